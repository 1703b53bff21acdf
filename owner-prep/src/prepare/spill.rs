//! Transformed rows on the owner's disk while sealing: the external sort by privacy-unit
//! token (the `extsort` crate spills sorted segments and merges them) and the sorted file
//! that the later passes re-read. Both live in the staging folder inside the output
//! folder and are deleted when `prepare` ends, whether it succeeds or fails.

use super::transform::Sealed;
use extsort::Sortable;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

/// One transformed row: its unit token, its source row number (to keep a unit's rows in
/// source order, so a run is deterministic) and its sealed values in rule order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row {
    pub token: [u8; 32],
    pub row: u64,
    pub values: Vec<Sealed>,
}

impl Row {
    pub fn sort_key(&self) -> ([u8; 32], u64) {
        (self.token, self.row)
    }
}

const TAG_F64: u8 = 0;
const TAG_I64: u8 = 1;
const TAG_TEXT: u8 = 2;
const TAG_TOKEN: u8 = 3;
/// A null kept as a null: the tag alone, no payload.
const TAG_NULL: u8 = 4;

impl Sortable for Row {
    fn encode<W: Write>(&self, w: &mut W) -> io::Result<()> {
        w.write_all(&self.token)?;
        w.write_all(&self.row.to_le_bytes())?;
        w.write_all(&(self.values.len() as u32).to_le_bytes())?;
        for v in &self.values {
            match v {
                Sealed::F64(x) => {
                    w.write_all(&[TAG_F64])?;
                    w.write_all(&x.to_le_bytes())?;
                }
                Sealed::I64(x) => {
                    w.write_all(&[TAG_I64])?;
                    w.write_all(&x.to_le_bytes())?;
                }
                Sealed::Text(s) => {
                    w.write_all(&[TAG_TEXT])?;
                    w.write_all(&(s.len() as u32).to_le_bytes())?;
                    w.write_all(s.as_bytes())?;
                }
                Sealed::Token(t) => {
                    w.write_all(&[TAG_TOKEN])?;
                    w.write_all(t)?;
                }
                Sealed::Null => w.write_all(&[TAG_NULL])?,
            }
        }
        Ok(())
    }

    fn decode<R: Read>(r: &mut R) -> io::Result<Row> {
        let mut token = [0u8; 32];
        r.read_exact(&mut token)?;
        let row = u64::from_le_bytes(array(r)?);
        let n = u32::from_le_bytes(array(r)?) as usize;
        let corrupt = || io::Error::new(io::ErrorKind::InvalidData, "corrupt spill file");
        if n > 4096 {
            return Err(corrupt());
        }
        let mut values = Vec::with_capacity(n);
        for _ in 0..n {
            let [tag] = array::<1>(r)?;
            values.push(match tag {
                TAG_F64 => Sealed::F64(f64::from_le_bytes(array(r)?)),
                TAG_I64 => Sealed::I64(i64::from_le_bytes(array(r)?)),
                TAG_TEXT => {
                    let len = u32::from_le_bytes(array(r)?) as usize;
                    let mut b = vec![0u8; len];
                    r.read_exact(&mut b)?;
                    Sealed::Text(String::from_utf8(b).map_err(|_| corrupt())?)
                }
                TAG_TOKEN => Sealed::Token(array(r)?),
                TAG_NULL => Sealed::Null,
                _ => return Err(corrupt()),
            });
        }
        Ok(Row { token, row, values })
    }
}

fn array<const N: usize>(r: &mut impl Read) -> io::Result<[u8; N]> {
    let mut a = [0u8; N];
    r.read_exact(&mut a)?;
    Ok(a)
}

/// The sorted rows, written once and read by each later pass.
pub(crate) struct SortedFile;

impl SortedFile {
    pub fn write(
        path: &Path,
        rows: impl Iterator<Item = io::Result<Row>>,
        mut each: impl FnMut(&Row),
    ) -> io::Result<()> {
        let mut w = BufWriter::with_capacity(1 << 20, File::create(path)?);
        for row in rows {
            let row = row?;
            each(&row);
            row.encode(&mut w)?;
        }
        w.into_inner().map_err(|e| e.into_error())?.sync_all()
    }

    pub fn read(path: &Path) -> io::Result<impl Iterator<Item = io::Result<Row>>> {
        let mut r = BufReader::with_capacity(1 << 20, File::open(path)?);
        let mut done = false;
        Ok(std::iter::from_fn(move || {
            if done {
                return None;
            }
            // The end of the file is clean only between rows; inside one it is corruption.
            match std::io::BufRead::fill_buf(&mut r) {
                Ok([]) => {
                    done = true;
                    return None;
                }
                Ok(_) => {}
                Err(e) => {
                    done = true;
                    return Some(Err(e));
                }
            }
            match Row::decode(&mut r) {
                Ok(row) => Some(Ok(row)),
                Err(e) => {
                    done = true;
                    let torn = e.kind() == io::ErrorKind::UnexpectedEof;
                    Some(Err(if torn { io::Error::new(io::ErrorKind::InvalidData, "torn spill file") } else { e }))
                }
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_through_the_sort_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let rows: Vec<Row> = (0..2_000u64)
            .map(|i| Row {
                token: [(i % 7) as u8; 32],
                row: i,
                values: vec![
                    Sealed::F64(i as f64 / 3.0),
                    Sealed::I64(-(i as i64)),
                    Sealed::Text(format!("z{i}")),
                    // A null between values: its tag carries no payload to misalign the next.
                    if i % 3 == 0 { Sealed::Null } else { Sealed::Token([i as u8; 32]) },
                    Sealed::I64(i as i64),
                ],
            })
            .collect();
        let sorted = extsort::ExternalSorter::new()
            .with_segment_size(100)
            .with_sort_dir(dir.path().to_path_buf())
            .sort_by_key(rows.clone(), Row::sort_key)
            .unwrap();
        let file = dir.path().join("sorted");
        SortedFile::write(&file, sorted, |_| {}).unwrap();
        let back: Vec<Row> = SortedFile::read(&file).unwrap().map(Result::unwrap).collect();
        let mut expected = rows;
        expected.sort_by_key(Row::sort_key);
        assert_eq!(back, expected);
        // A torn file is an error, not a silent end.
        let len = std::fs::metadata(&file).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
        f.set_len(len - 3).unwrap();
        let n_ok = SortedFile::read(&file).unwrap().take_while(Result::is_ok).count();
        assert_eq!(n_ok, 1999);
    }

    #[test]
    fn an_unknown_tag_is_corruption() {
        let mut b = Vec::new();
        Row { token: [1; 32], row: 1, values: vec![Sealed::Null] }.encode(&mut b).unwrap();
        assert_eq!(b.len(), 32 + 8 + 4 + 1, "a null is its tag alone");
        *b.last_mut().unwrap() = 5;
        assert_eq!(Row::decode(&mut &b[..]).unwrap_err().kind(), io::ErrorKind::InvalidData);
    }
}
