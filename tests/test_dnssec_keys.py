"""DNSSEC keys as an operator handles them: `geodns keygen`, `geodns ds`, and the config naming the files."""

from __future__ import annotations

import subprocess
import sys

import dns.dnssec
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest

from geodns.config.load import load_config
from geodns.dnssec import keys
from geodns.errors import ConfigError
from tests.conftest import REPO
from tests.dnsserver import write

ZONE_TEXT = "gslb.example.com"


def geodns(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "geodns", *args], capture_output=True, text=True, timeout=60, cwd=cwd)


@pytest.mark.parametrize("algorithm,number", [("ecdsap256sha256", 13), ("ed25519", 15)])
def test_keygen_writes_bind_files_that_read_back_and_sign(tmp_path, algorithm, number):
    made = geodns("keygen", ZONE_TEXT, "--algorithm", algorithm, "--directory", str(tmp_path))
    assert made.returncode == 0, made.stderr
    base = made.stdout.strip()
    assert base.startswith(f"K{ZONE_TEXT}.+{number:03d}+")
    public, private = tmp_path / f"{base}.key", tmp_path / f"{base}.private"
    assert (private.stat().st_mode & 0o777) == 0o600
    assert f"{ZONE_TEXT}. IN DNSKEY 257 3 {number} " in public.read_text()
    assert f"Algorithm: {number} " in private.read_text()
    key = keys.read(private)
    assert key.basename == base and key.tag == int(base.rsplit("+", 1)[1])
    # What the key signs, an independent validator (dnspython's) accepts with the DNSKEY from the .key file.
    name = dns.name.from_text(ZONE_TEXT)
    dnskey = dns.rdata.from_text("IN", "DNSKEY", public.read_text().splitlines()[-1].split("DNSKEY", 1)[1])
    rrset = dns.rrset.from_text(f"www.{ZONE_TEXT}.", 30, "IN", "A", "192.0.2.1")
    signature = dns.dnssec.sign(rrset, key.private, name, key.dnskey, lifetime=3600)
    dns.dnssec.validate_rrsig(rrset, signature, {name: dns.rrset.from_rdata(name, 3600, dnskey)})


def test_ds_prints_the_parent_record_from_key_files_and_from_the_config(tmp_path):
    base = geodns("keygen", ZONE_TEXT, "--directory", str(tmp_path)).stdout.strip()
    zsk = geodns("keygen", ZONE_TEXT, "--zsk", "--directory", str(tmp_path)).stdout.strip()
    by_key = geodns("ds", ZONE_TEXT, "--key", str(tmp_path / f"{base}.key"), "--key", str(tmp_path / f"{zsk}.key"))
    assert by_key.returncode == 0, by_key.stderr
    lines = by_key.stdout.splitlines()
    assert len(lines) == 1  # the ZSK has no DS
    key = keys.read(tmp_path / f"{base}.private")
    expected = dns.dnssec.make_ds(dns.name.from_text(ZONE_TEXT), key.dnskey, "SHA256")
    assert lines[0] == f"{ZONE_TEXT}. 3600 IN DS {expected.to_text()}"
    assert lines[0].split()[4:7] == [str(key.tag), "13", "2"]
    config = write(
        tmp_path / "geodns.yaml",
        f"zones: []\ndnssec:\n  zones:\n    {ZONE_TEXT}: {{keys: [{base}.private, {zsk}.key]}}\n",
    )
    by_config = geodns("ds", ZONE_TEXT, "--config", str(config))
    assert by_config.returncode == 0, by_config.stderr
    assert by_config.stdout.splitlines() == lines
    unsigned = geodns("ds", "other.example.", "--config", str(config))
    assert unsigned.returncode == 1 and "is not signed" in unsigned.stderr


def test_config_reads_the_keys_and_the_timing(tmp_path):
    base = geodns("keygen", ZONE_TEXT, "--algorithm", "ed25519", "--directory", str(tmp_path)).stdout.strip()
    config = load_config(
        write(
            tmp_path / "c.yaml",
            f"dnssec:\n  validity: 10d\n  refresh: 3d\n  inception_backdate: 0\n"
            f"  zones:\n    {ZONE_TEXT}:\n      keys: [{base}.private]\n",
        )
    )
    signed = config.dnssec.zones[(b"gslb", b"example", b"com")]
    assert [k.basename for k in signed.keys] == [base]
    assert (config.dnssec.validity, config.dnssec.refresh, config.dnssec.inception_backdate) == (864000, 259200, 0)


def test_a_wrong_or_missing_key_file_is_a_config_error_at_its_line(tmp_path):
    good = geodns("keygen", ZONE_TEXT, "--directory", str(tmp_path)).stdout.strip()
    other = geodns("keygen", "other.example", "--directory", str(tmp_path)).stdout.strip()
    # A .private whose key is not the .key's DNSKEY: another key's private half under this name.
    (tmp_path / "Kmixed.key").write_text((tmp_path / f"{good}.key").read_text())
    (tmp_path / "Kmixed.private").write_text((tmp_path / f"{other}.private").read_text())
    (tmp_path / "Kbroken.key").write_text("gslb.example.com. IN A 192.0.2.1\n")
    (tmp_path / "Kbroken.private").write_text("Private-key-format: v1.3\n")
    path = write(
        tmp_path / "c.yaml",
        "dnssec:\n"  # 1
        "  validity: 1d\n"  # 2
        "  refresh: 2d\n"  # 3
        "  zones:\n"  # 4
        f"    {ZONE_TEXT}:\n"  # 5
        "      keys:\n"  # 6
        "        - Kmissing.+013+00001.private\n"  # 7
        f"        - {other}.private\n"  # 8
        "        - Kmixed.private\n"  # 9
        "        - Kbroken.key\n"  # 10
        f"        - {good}\n"  # 11
        "    empty.example: {keys: []}\n",  # 12
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    text = [str(p) for p in caught.value.problems]
    assert (
        text[0]
        == f"{path}:3: dnssec.refresh: must be shorter than validity (86400s): a signature is replaced when less than this is left"
    )
    assert (
        text[1].startswith(f"{path}:7: dnssec.zones.{ZONE_TEXT}.keys[0]: ")
        and "Kmissing.+013+00001.key: no such key file" in text[1]
    )
    assert (
        text[2].startswith(f"{path}:8: dnssec.zones.{ZONE_TEXT}.keys[1]: ")
        and "a key for other.example., not gslb.example.com." in text[2]
    )
    assert text[3].startswith(f"{path}:9: ") and "the private key does not match the DNSKEY" in text[3]
    assert text[4].startswith(f"{path}:10: ") and "not a DNSKEY record" in text[4]
    assert (
        text[5]
        == f"{path}:12: dnssec.zones.empty.example.keys: must be a non-empty list of key files (K<zone>+<alg>+<tag>.private)"
    )
    assert len(text) == 6  # the good key (named by its base name) is no problem


def test_generate_refuses_an_unknown_algorithm():
    with pytest.raises(keys.KeyFileError, match="unknown algorithm 'rsasha1'"):
        keys.generate(ZONE_TEXT, "rsasha1")


def test_a_signed_zone_that_is_not_served_is_named_with_its_line(tmp_path):
    from geodns.process.server import Settings, build_engine
    from tests.conftest import OTHER_ZONE

    base = geodns("keygen", "gslb.example.com", "--directory", str(tmp_path)).stdout.strip()
    zone = write(tmp_path / "other.test.zone", OTHER_ZONE)
    path = write(
        tmp_path / "c.yaml",
        f'zones: ["{zone}"]\ndnssec:\n  zones:\n    gslb.example.com:\n      keys: [{base}.key]\n',
    )
    with pytest.raises(ConfigError) as caught:
        build_engine(Settings(config_path=path).load())
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:4: dnssec.zones.gslb.example.com: not a served zone (zones: lists the zone files)"
    ]
