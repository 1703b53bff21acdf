#!/usr/bin/env python3
"""Independent reference for the tlog crate's interoperability test (tests/interop.rs).

Written from the specification texts, not from the Rust code:

- RFC 6962 section 2.1 (= RFC 9162 section 2.1.1): MTH, PATH and PROOF/SUBPROOF, computed
  by their recursive definitions over the leaf list.
- RFC 9162 sections 2.1.3.2 and 2.1.4.2: the inclusion and consistency proof verification
  algorithms; every proof computed here is checked with them before it is returned.
- C2SP signed-note and C2SP tlog-checkpoint: note parsing, Ed25519 key IDs, signatures.

Request on stdin (JSON):
  {"logs":  [{"leaves": [hex, ...], "inclusion": [[index, size], ...],
              "consistency": [[old, new], ...]}, ...],
   "notes": [{"text": "<whole note>", "public_key": hex}, ...]}
Answer on stdout (JSON):
  {"logs":  [{"roots": [hex of MTH(D[0:m]) for m = 1..n],
              "inclusion": [[hex, ...], ...], "consistency": [[hex, ...], ...]}, ...],
   "notes": [{"origin", "size", "root" (hex), "signature_valid", "key_id_matches",
              "signatures": [{"name", "key_id", "key_id_matches", "signature_valid"}]}
             or {"error": "..."}, ...]}

Needs Python 3 and the `cryptography` package (for Ed25519).
"""

import base64
import hashlib
import json
import sys

try:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
except ImportError as e:  # pragma: no cover - reported to the Rust test as a failure
    sys.stderr.write(
        "rfc6962_reference.py: the Python package `cryptography` is required "
        "(pip install cryptography): %s\n" % e
    )
    sys.exit(3)

# Domain separation prefixes, RFC 6962 section 2.1.
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"


def sha256(data):
    return hashlib.sha256(data).digest()


def hash_children(left, right):
    return sha256(NODE_PREFIX + left + right)


def largest_power_of_two_below(n):
    """k: the largest power of two with k < n (n > 1)."""
    assert n > 1
    k = 1
    while k * 2 < n:
        k *= 2
    return k


class Tree:
    """D[0:n] with MTH memoised on (start, end) ranges (MTH of a range is a pure function)."""

    def __init__(self, leaves):
        self.leaves = leaves
        self.cache = {}

    def mth(self, start, end):
        """MTH(D[start:end]), RFC 6962 section 2.1."""
        n = end - start
        if n == 0:
            return sha256(b"")
        key = (start, end)
        got = self.cache.get(key)
        if got is not None:
            return got
        if n == 1:
            h = sha256(LEAF_PREFIX + self.leaves[start])
        else:
            k = largest_power_of_two_below(n)
            h = hash_children(self.mth(start, start + k), self.mth(start + k, end))
        self.cache[key] = h
        return h

    def path(self, m, start, end):
        """PATH(m, D[start:end]), RFC 6962 section 2.1.1."""
        n = end - start
        assert 0 <= m < n
        if n == 1:
            return []
        k = largest_power_of_two_below(n)
        if m < k:
            return self.path(m, start, start + k) + [self.mth(start + k, end)]
        return self.path(m - k, start + k, end) + [self.mth(start, start + k)]

    def proof(self, m, n):
        """PROOF(m, D[0:n]), RFC 6962 section 2.1.2."""
        assert 0 < m <= n
        return self.subproof(m, 0, n, True)

    def subproof(self, m, start, end, b):
        """SUBPROOF(m, D[start:end], b)."""
        n = end - start
        if m == n:
            return [] if b else [self.mth(start, end)]
        assert m < n
        k = largest_power_of_two_below(n)
        if m <= k:
            return self.subproof(m, start, start + k, b) + [self.mth(start + k, end)]
        return self.subproof(m - k, start + k, end, False) + [self.mth(start, start + k)]


def verify_inclusion(leaf_index, tree_size, leaf_hash, proof, root):
    """RFC 9162 section 2.1.3.2."""
    if leaf_index >= tree_size:
        return False
    fn, sn = leaf_index, tree_size - 1
    r = leaf_hash
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = hash_children(p, r)
            if not fn & 1:
                while not (fn & 1 or fn == 0):
                    fn >>= 1
                    sn >>= 1
        else:
            r = hash_children(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(first, second, first_hash, second_hash, consistency_path):
    """RFC 9162 section 2.1.4.2."""
    if first > second or first == 0:
        return False
    if first == second:
        return len(consistency_path) == 0 and first_hash == second_hash
    if len(consistency_path) == 0:
        return False
    path = list(consistency_path)
    if first & (first - 1) == 0:  # an exact power of two
        path = [first_hash] + path
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = hash_children(c, fr)
            sr = hash_children(c, sr)
            if not fn & 1:
                while not (fn & 1 or fn == 0):
                    fn >>= 1
                    sn >>= 1
        else:
            sr = hash_children(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_hash and sr == second_hash and sn == 0


def answer_log(log):
    leaves = [bytes.fromhex(x) for x in log["leaves"]]
    n = len(leaves)
    tree = Tree(leaves)
    roots = [tree.mth(0, m) for m in range(1, n + 1)]
    inclusion = []
    for index, size in log.get("inclusion", []):
        assert 0 <= index < size <= n, (index, size, n)
        p = tree.path(index, 0, size)
        leaf = sha256(LEAF_PREFIX + leaves[index])
        assert verify_inclusion(index, size, leaf, p, roots[size - 1]), ("inclusion", index, size)
        # The verifier is not vacuous: another index, or a damaged hash, fails.
        if size > 1:
            assert not verify_inclusion((index + 1) % size, size, leaf, p, roots[size - 1])
            bad = [bytes([p[0][0] ^ 1]) + p[0][1:]] + p[1:]
            assert not verify_inclusion(index, size, leaf, bad, roots[size - 1])
        inclusion.append([h.hex() for h in p])
    consistency = []
    for old, new in log.get("consistency", []):
        assert 1 <= old <= new <= n, (old, new, n)
        p = tree.proof(old, new)
        assert verify_consistency(old, new, roots[old - 1], roots[new - 1], p), ("consistency", old, new)
        if old < new:
            assert not verify_consistency(old, new, roots[new - 1], roots[new - 1], p)
            bad = p[:-1] + [p[-1][:-1] + bytes([p[-1][-1] ^ 1])]
            assert not verify_consistency(old, new, roots[old - 1], roots[new - 1], bad)
        consistency.append([h.hex() for h in p])
    return {"roots": [r.hex() for r in roots], "inclusion": inclusion, "consistency": consistency}


class NoteError(Exception):
    pass


def ed25519_key_id(name, public_key):
    """C2SP signed-note: key ID = SHA-256(key name || 0x0A || 0x01 || 32-byte key)[:4]."""
    return sha256(name.encode("utf-8") + b"\n" + b"\x01" + public_key)[:4]


def strict_b64(s):
    try:
        raw = base64.b64decode(s.encode("ascii"), validate=True)
    except Exception as e:
        raise NoteError("not standard base64: %r (%s)" % (s, e))
    if base64.b64encode(raw).decode("ascii") != s:
        raise NoteError("not canonical base64: %r" % s)
    return raw


def answer_note(req):
    note = req["text"]
    public_key = bytes.fromhex(req["public_key"])
    if len(public_key) != 32:
        raise NoteError("Ed25519 public key is not 32 bytes")
    for ch in note:
        if ch != "\n" and (ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0):
            raise NoteError("control character in note")
    # signed-note: the text, a blank line, then signature lines; the text ends with a newline.
    cut = note.rfind("\n\n")
    if cut < 0:
        raise NoteError("no blank line")
    text, sig_block = note[: cut + 1], note[cut + 2 :]
    if not sig_block.endswith("\n"):
        raise NoteError("note does not end in a newline")
    signatures = []
    for line in sig_block[:-1].split("\n"):
        if not line.startswith("\u2014 "):
            raise NoteError("signature line does not start with an em dash and a space: %r" % line)
        name, sep, b64 = line[2:].rpartition(" ")
        if not sep or not name or "+" in name or any(c.isspace() for c in name):
            raise NoteError("bad key name in signature line: %r" % line)
        blob = strict_b64(b64)
        if len(blob) < 5:
            raise NoteError("signature shorter than a key ID")
        key_id, sig = blob[:4], blob[4:]
        expected = ed25519_key_id(name, public_key)
        try:
            Ed25519PublicKey.from_public_bytes(public_key).verify(sig, text.encode("utf-8"))
            valid = True
        except InvalidSignature:
            valid = False
        signatures.append(
            {"name": name, "key_id": key_id.hex(), "key_id_matches": key_id == expected, "signature_valid": valid}
        )
    if not signatures:
        raise NoteError("no signature lines")
    # tlog-checkpoint: origin, decimal tree size, base64 root hash, optional extension lines.
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise NoteError("checkpoint body has fewer than three lines")
    origin, size_line, root_line = lines[0], lines[1], lines[2]
    if origin == "":
        raise NoteError("empty origin")
    if not size_line or not all("0" <= c <= "9" for c in size_line) or (len(size_line) > 1 and size_line[0] == "0"):
        raise NoteError("tree size is not decimal without leading zeros: %r" % size_line)
    size = int(size_line)
    if size >= 1 << 64:
        raise NoteError("tree size beyond 64 bits")
    root = strict_b64(root_line)
    if len(root) != 32:
        raise NoteError("root hash is not 32 bytes")
    by_origin = [s for s in signatures if s["name"] == origin]
    return {
        "origin": origin,
        "size": size,
        "root": root.hex(),
        "extensions": lines[3:],
        # The checkpoint key is named as the origin: judge the signature lines under it.
        "key_id_matches": any(s["key_id_matches"] for s in by_origin),
        "signature_valid": any(s["key_id_matches"] and s["signature_valid"] for s in by_origin),
        "signatures": signatures,
    }


def main():
    if not __debug__:
        sys.exit("rfc6962_reference.py: run without -O; its self-checks are assert statements")
    req = json.load(sys.stdin)
    out = {"logs": [answer_log(log) for log in req.get("logs", [])], "notes": []}
    for note in req.get("notes", []):
        try:
            out["notes"].append(answer_note(note))
        except NoteError as e:
            out["notes"].append({"error": str(e)})
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
