#!/usr/bin/env python3
"""Independent reference verifier for the attestation test vectors, used as the
baseline of `cargo bench -p attestation-verifier`.

Uses only Python's `cryptography` package (no code shared with the Rust crate):
Nitro: COSE_Sign1 ES384 signature + chain root -> cabundle -> leaf + validity.
SNP:   ARK -> ASK -> VCEK RSA-PSS chain + validity + report ECDSA P-384 signature.

Usage: reference_verify.py TESTDATA_DIR [ITERATIONS]
Prints one JSON object per vector: {"file", "kind", "valid", "median_us"}.
"""
import datetime
import hashlib
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

NITRO_ROOT_SHA256 = "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b"


def cbor_item(b, i):
    """Minimal CBOR reader (enough for NSM documents). Returns (value, next_index)."""
    ib = b[i]
    major, info = ib >> 5, ib & 0x1F
    i += 1
    if info < 24:
        arg = info
    elif info in (24, 25, 26, 27):
        n = 1 << (info - 24)
        arg = int.from_bytes(b[i:i + n], "big")
        i += n
    elif info == 31:
        arg = None
    else:
        raise ValueError("reserved")
    if major == 0:
        return arg, i
    if major == 1:
        return -1 - arg, i
    if major in (2, 3):
        if arg is None:
            out = b""
            while b[i] != 0xFF:
                chunk, i = cbor_item(b, i)
                out += chunk if isinstance(chunk, bytes) else chunk.encode()
            i += 1
        else:
            out = bytes(b[i:i + arg])
            i += arg
        return (out if major == 2 else out.decode()), i
    if major == 4:
        items = []
        while (arg is None and b[i] != 0xFF) or (arg is not None and len(items) < arg):
            v, i = cbor_item(b, i)
            items.append(v)
        return items, (i + 1 if arg is None else i)
    if major == 5:
        m = {}
        n = 0
        while (arg is None and b[i] != 0xFF) or (arg is not None and n < arg):
            k, i = cbor_item(b, i)
            v, i = cbor_item(b, i)
            m[k] = v
            n += 1
        return m, (i + 1 if arg is None else i)
    if major == 6:
        return cbor_item(b, i)
    if major == 7:
        return {20: False, 21: True, 22: None, 23: None}[info], i
    raise ValueError("bad major")


def cbor_bstr(x):
    n = len(x)
    if n < 24:
        return bytes([0x40 | n]) + x
    if n < 256:
        return bytes([0x58, n]) + x
    if n < 65536:
        return bytes([0x59]) + n.to_bytes(2, "big") + x
    return bytes([0x5A]) + n.to_bytes(4, "big") + x


def in_window(cert, at):
    return cert.not_valid_before_utc <= at <= cert.not_valid_after_utc


def verify_nitro(doc, at):
    cose, end = cbor_item(doc, 0)
    assert end == len(doc)
    protected, _unprot, payload, sig = cose
    assert protected == b"\xa1\x01\x38\x22"
    p, _ = cbor_item(payload, 0)
    bundle = [x509.load_der_x509_certificate(c) for c in p["cabundle"]]
    assert hashlib.sha256(p["cabundle"][0]).hexdigest() == NITRO_ROOT_SHA256
    chain = bundle + [x509.load_der_x509_certificate(p["certificate"])]
    for parent, child in zip(chain, chain[1:]):
        child.verify_directly_issued_by(parent)
    assert all(in_window(c, at) for c in chain)
    sig_structure = b"\x84" + b"\x6aSignature1" + cbor_bstr(protected) + b"\x40" + cbor_bstr(payload)
    der_sig = encode_dss_signature(int.from_bytes(sig[:48], "big"), int.from_bytes(sig[48:], "big"))
    chain[-1].public_key().verify(der_sig, sig_structure, ec.ECDSA(hashes.SHA384()))
    return True


def verify_snp(report, vcek_der, ark, ask, at):
    vcek = x509.load_der_x509_certificate(vcek_der)
    ark.verify_directly_issued_by(ark)
    ask.verify_directly_issued_by(ark)
    vcek.verify_directly_issued_by(ask)
    assert all(in_window(c, at) for c in (ark, ask, vcek))
    r = int.from_bytes(report[0x2A0:0x2A0 + 72], "little")
    s = int.from_bytes(report[0x2E8:0x2E8 + 72], "little")
    vcek.public_key().verify(encode_dss_signature(r, s), report[:0x2A0], ec.ECDSA(hashes.SHA384()))
    return True


def main():
    # AMD VCEKs carry serial number 0 (RFC 5280 forbids it); accept it, as the Rust verifier does.
    warnings.filterwarnings("ignore", message=".*serial number.*")
    root = Path(sys.argv[1])
    iters = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    expected = json.loads((root / "expected.json").read_text())
    for e in expected:
        data = (root / e["file"]).read_bytes()
        at = datetime.datetime.fromtimestamp(e["verify_at_unix"], tz=datetime.timezone.utc)
        if e["kind"] == "nitro":
            fn = lambda: verify_nitro(data, at)  # noqa: E731
        else:
            gen = "genoa" if e["product"].startswith("Genoa") else "milan"
            ark = x509.load_pem_x509_certificate((root / f"snp/ark_{gen}.pem").read_bytes())
            ask = x509.load_pem_x509_certificate((root / f"snp/ask_{gen}.pem").read_bytes())
            vek = (root / e["vek"]).read_bytes()
            fn = lambda: verify_snp(data, vek, ark, ask, at)  # noqa: E731
        valid = fn()
        times = []
        for _ in range(iters):
            t0 = time.perf_counter_ns()
            fn()
            times.append(time.perf_counter_ns() - t0)
        print(json.dumps({"file": e["file"], "kind": e["kind"], "valid": valid,
                          "median_us": statistics.median(times) / 1000.0}))


if __name__ == "__main__":
    main()
