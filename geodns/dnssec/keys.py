"""Signing keys in BIND's file format: ``K<zone>+<alg>+<tag>.key`` and ``.private``.

BIND's layout is the one every DNSSEC tool reads (``dnssec-dsfromkey``, ``ldns``,
Knot's ``keymgr import-bind``), so keys made by ``geodns keygen`` move to and from
them.  The ``.key`` file holds the DNSKEY record; the ``.private`` file holds the
private key as ``Key: value`` lines (``Private-key-format: v1.3``, ``Algorithm: 13
(ECDSAP256SHA256)``, ``PrivateKey: <base64>``).  For ECDSA the private key is the
32-octet scalar, for Ed25519 the 32-octet seed (RFC 6605, RFC 8080 and BIND agree).

The cryptography is the ``cryptography`` package's; DNSKEY, key tag and DS
are dnspython's ``dns.dnssec``.  Nothing here is hand-written crypto.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from pathlib import Path

import dns.dnssec
import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.DNSKEY
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

# The algorithms geodns makes and reads: name (as BIND writes it) -> number (IANA).
ALGORITHMS = {"ecdsap256sha256": 13, "ed25519": 15}
_ALGORITHM_TEXT = {13: "ECDSAP256SHA256", 15: "ED25519"}
SEP = 0x0001  # DNSKEY flags: secure entry point (a KSK, or a combined signing key)
ZONE = 0x0100  # DNSKEY flags: zone key

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


class KeyFileError(ValueError):
    """A key file that cannot be used; the message says which file and why."""


@dataclass(frozen=True, eq=False)
class SigningKey:
    """One zone key: the private half and its DNSKEY, as ``dns.dnssec`` wants them."""

    zone: dns.name.Name
    private: PrivateKey
    dnskey: dns.rdtypes.ANY.DNSKEY.DNSKEY
    path: Path | None = None  # the .private file it came from

    @property
    def algorithm(self) -> int:
        return int(self.dnskey.algorithm)

    @property
    def tag(self) -> int:
        return dns.dnssec.key_id(self.dnskey)

    @property
    def sep(self) -> bool:
        """A key-signing key (or a combined one): the parent's DS points at it."""
        return bool(self.dnskey.flags & SEP)

    @property
    def basename(self) -> str:
        """``Kgslb.example.com.+013+12345``: BIND's name for the pair, without the extension."""
        return f"K{self.zone.to_text()}+{self.algorithm:03d}+{self.tag:05d}"

    def ds(self, digest: str = "SHA256") -> dns.rdata.Rdata:
        """The DS record the parent zone publishes for this key."""
        return dns.dnssec.make_ds(self.zone, self.dnskey, digest)


def generate(zone: str, algorithm: str = "ecdsap256sha256", ksk: bool = True) -> SigningKey:
    """A new key for ``zone``; ``ksk`` sets the SEP flag (257, what a combined signing key carries)."""
    number = ALGORITHMS.get(algorithm.lower())
    if number is None:
        raise KeyFileError(f"unknown algorithm {algorithm!r} (expected one of: {', '.join(ALGORITHMS)})")
    private: PrivateKey
    if number == 13:
        private = ec.generate_private_key(ec.SECP256R1())
    else:
        private = ed25519.Ed25519PrivateKey.generate()
    return _key(dns.name.from_text(zone), private, number, ZONE | (SEP if ksk else 0), None)


def _key(zone: dns.name.Name, private: PrivateKey, algorithm: int, flags: int, path: Path | None) -> SigningKey:
    dnskey = dns.dnssec.make_dnskey(private.public_key(), algorithm, flags)
    return SigningKey(zone, private, dnskey, path)


def write(key: SigningKey, directory: Path) -> tuple[Path, Path]:
    """Write ``<basename>.key`` and ``<basename>.private`` into ``directory`` (the private one mode 0600)."""
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime())
    kind = "key-signing" if key.sep else "zone-signing"
    public = directory / f"{key.basename}.key"
    private = directory / f"{key.basename}.private"
    zone = key.zone.to_text()
    public.write_text(
        f"; This is a {kind} key, keyid {key.tag}, for {zone}\n"
        f"; Created: {stamp}\n"
        f"{zone} IN DNSKEY {key.dnskey.to_text(chunksize=0)}\n"
    )
    if isinstance(key.private, ec.EllipticCurvePrivateKey):
        secret = key.private.private_numbers().private_value.to_bytes(32, "big")
    else:
        from cryptography.hazmat.primitives import serialization

        secret = key.private.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
    private.touch(mode=0o600)
    private.write_text(
        "Private-key-format: v1.3\n"
        f"Algorithm: {key.algorithm} ({_ALGORITHM_TEXT[key.algorithm]})\n"
        f"PrivateKey: {base64.b64encode(secret).decode()}\n"
        f"Created: {stamp}\nPublish: {stamp}\nActivate: {stamp}\n"
    )
    return public, private


def pair_of(path: Path) -> tuple[Path, Path]:
    """The (.key, .private) files named by ``path``: either one of them, or their common base name."""
    text = str(path)
    for suffix in (".key", ".private"):
        if text.endswith(suffix):
            text = text[: -len(suffix)]
            break
    return Path(text + ".key"), Path(text + ".private")


def read(path: Path) -> SigningKey:
    """The key pair named by ``path``; KeyFileError says which file is wrong and why."""
    public_path, private_path = pair_of(path)
    dnskey_text = _read_text(public_path)
    owner, dnskey = _dnskey(public_path, dnskey_text)
    fields = _private_fields(private_path, _read_text(private_path))
    try:
        algorithm = int(fields.get("Algorithm", "").split()[0])
    except (ValueError, IndexError):
        raise KeyFileError(f"{private_path}: no 'Algorithm:' line") from None
    if algorithm not in _ALGORITHM_TEXT:
        raise KeyFileError(f"{private_path}: algorithm {algorithm} is not supported (13 ECDSAP256SHA256, 15 ED25519)")
    if algorithm != dnskey.algorithm:
        raise KeyFileError(
            f"{private_path}: algorithm {algorithm} differs from {public_path}'s {int(dnskey.algorithm)}"
        )
    try:
        secret = base64.b64decode(fields.get("PrivateKey", ""), validate=True)
    except ValueError:
        raise KeyFileError(f"{private_path}: 'PrivateKey:' is not base64") from None
    if len(secret) != 32:
        raise KeyFileError(f"{private_path}: 'PrivateKey:' must be 32 octets, not {len(secret)}")
    private: PrivateKey
    try:
        if algorithm == 13:
            private = ec.derive_private_key(int.from_bytes(secret, "big"), ec.SECP256R1())
        else:
            private = ed25519.Ed25519PrivateKey.from_private_bytes(secret)
    except ValueError as exc:
        raise KeyFileError(f"{private_path}: not a valid private key ({exc})") from None
    key = _key(owner, private, algorithm, dnskey.flags, private_path)
    if key.dnskey.key != dnskey.key:
        raise KeyFileError(f"{private_path}: the private key does not match the DNSKEY in {public_path}")
    return key


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii")
    except FileNotFoundError:
        raise KeyFileError(f"{path}: no such key file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None


def _dnskey(path: Path, text: str) -> tuple[dns.name.Name, dns.rdtypes.ANY.DNSKEY.DNSKEY]:
    """The one DNSKEY record of a .key file: ``OWNER [TTL] [IN] DNSKEY FLAGS 3 ALG KEY``."""
    lines = [line.split(";", 1)[0].strip() for line in text.splitlines()]
    records = [line for line in lines if line]
    if len(records) != 1:
        raise KeyFileError(f"{path}: expected one DNSKEY record, found {len(records)} records")
    words = records[0].split()
    try:
        at = [w.upper() for w in words].index("DNSKEY")
        owner = dns.name.from_text(words[0])
        rdata = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.DNSKEY, " ".join(words[at + 1 :]))
    except (ValueError, dns.exception.DNSException) as exc:
        raise KeyFileError(f"{path}: not a DNSKEY record ({exc})") from None
    assert isinstance(rdata, dns.rdtypes.ANY.DNSKEY.DNSKEY)
    if not rdata.flags & ZONE:
        raise KeyFileError(f"{path}: the DNSKEY is not a zone key (flags {rdata.flags})")
    return owner, rdata


def _private_fields(path: Path, text: str) -> dict[str, str]:
    fields = {}
    for line in text.splitlines():
        if ":" in line:
            key, value = line.split(":", 1)
            fields[key.strip()] = value.strip()
    if not fields.get("Private-key-format", "").startswith("v1."):
        raise KeyFileError(f"{path}: not a BIND private key file (no 'Private-key-format: v1.x' line)")
    return fields
