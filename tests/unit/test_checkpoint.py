"""C2SP signed notes and checkpoints: real published notes and keys, round trips, tampering.

tests/data/merkle/signed-note-vectors.json holds notes signed by others (Go's sumdb note
package tests, transparency-dev/formats, sum.golang.org): evidock must produce the same bytes
from the same key and verify what they signed.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.checkpoint import (
    MAX_NOTE_SIZE,
    MAX_SIGNATURES,
    Checkpoint,
    CheckpointError,
    NoteVerifier,
    add_signature,
    check_key_name,
    ed25519_key_id,
    make_checkpoint,
    open_checkpoint,
    parse_checkpoint,
    parse_note,
    sign_note,
    verifier_key,
    verify_note,
)
from storage.keys import StationKey
from storage.merkle import MerkleTree, leaf_hash, root

VECTORS = json.loads(
    (Path(__file__).parents[1] / "data" / "merkle" / "signed-note-vectors.json").read_text())
SIGN = VECTORS["sign"]
SUMDB = VECTORS["checkpoint"]
ORIGIN = "evidock.example/station-7"


def go_signer_key(skey: str) -> tuple[str, Ed25519PrivateKey]:
    """Go's ``PRIVATE+KEY+<name>+<id>+base64(0x01 || seed)`` (test vectors only)."""
    _, _, name, _, blob = skey.split("+", 4)
    raw = base64.b64decode(blob)
    assert raw[0] == 1 and len(raw) == 33
    return name, Ed25519PrivateKey.from_private_bytes(raw[1:])


@pytest.fixture
def station() -> StationKey:
    return StationKey(Ed25519PrivateKey.generate())


@pytest.fixture
def witness() -> StationKey:
    return StationKey(Ed25519PrivateKey.generate())


def checkpoint_note(key: StationKey, size: int = 3) -> bytes:
    top = root([leaf_hash(bytes([i])) for i in range(size)])
    return make_checkpoint(ORIGIN, size, top, ORIGIN, key)


# ---- known answers ------------------------------------------------------------------------

def test_signing_reproduces_the_go_note_package_byte_for_byte() -> None:
    name, key = go_signer_key(SIGN["signer_key"])
    signed = sign_note(SIGN["text"].encode(), name, key)
    assert signed == SIGN["signed"].encode()
    peter = NoteVerifier.from_vkey(SIGN["vkey"])
    assert verify_note(signed, [peter]) == [peter]
    assert parse_note(signed)[0] == SIGN["text"].encode()


def test_key_ids_and_vkeys_match_the_published_key_pairs() -> None:
    for pair in VECTORS["key_pairs"]["pairs"]:
        name, key = go_signer_key(pair["skey"])
        vkey = verifier_key(name, key.public_key())
        assert vkey == pair["vkey"]
        parsed = NoteVerifier.from_vkey(pair["vkey"])
        assert parsed.vkey == pair["vkey"]
        assert f"{parsed.key_id:08x}" == pair["skey"].split("+")[3]
        assert ed25519_key_id(name, parsed.public_key) == parsed.key_id


def test_a_cosigned_note_verifies_for_each_trusted_key_and_ignores_unknown_ones() -> None:
    both = (SIGN["signed"] + SIGN["cosignature_line"]).encode()
    peter = NoteVerifier.from_vkey(SIGN["vkey"])
    enoch = NoteVerifier.from_vkey(SIGN["cosigner_vkey"])
    assert verify_note(both, [peter, enoch]) == [peter, enoch]
    assert verify_note(both, [enoch, peter]) == [peter, enoch]  # note order, not trust order
    assert verify_note(both, [enoch]) == [enoch]  # Peter's signature is unknown: ignored
    with pytest.raises(CheckpointError, match="no trusted key signed this note"):
        verify_note(both, [])


def test_a_real_sum_golang_org_checkpoint_opens() -> None:
    sumdb = NoteVerifier.from_vkey(SUMDB["vkey"])
    checkpoint, verified = open_checkpoint(SUMDB["note"].encode(), [sumdb],
                                           origin=SUMDB["origin"])
    assert verified == [sumdb]
    assert checkpoint == Checkpoint(SUMDB["origin"], SUMDB["size"],
                                    base64.b64decode(SUMDB["root_base64"]))
    assert checkpoint.body() == parse_note(SUMDB["note"].encode())[0]
    with pytest.raises(CheckpointError, match=r"is for 'go\.sum database tree', not 'other'"):
        open_checkpoint(SUMDB["note"].encode(), [sumdb], origin="other")


def test_the_witnessed_sum_golang_org_checkpoint_verifies_all_cosignatures() -> None:
    note = (SUMDB["note"] + "".join(c["line"] for c in SUMDB["cosigners"])).encode()
    log = NoteVerifier.from_vkey(SUMDB["vkey"])
    witnesses = [NoteVerifier.from_vkey(c["vkey"]) for c in SUMDB["cosigners"]]
    assert verify_note(note, [log, *witnesses]) == [log, *witnesses]
    assert verify_note(note, witnesses[1:2]) == witnesses[1:2]


def test_verifier_keys_reject_every_mangling() -> None:
    """As in Go's TestNewVerifier: every part and every one-byte change is refused."""
    vkey = SIGN["vkey"]
    for i in range(len(vkey) + 1):
        for j in range(i + 1, len(vkey) + 1):
            if (i, j) != (0, len(vkey)):
                with pytest.raises(CheckpointError):
                    NoteVerifier.from_vkey(vkey[i:j])
    for i in range(len(vkey)):
        changed = vkey[:i] + chr(ord(vkey[i]) + 1) + vkey[i + 1:]
        with pytest.raises(CheckpointError):
            NoteVerifier.from_vkey(changed)
    with pytest.raises(CheckpointError, match="canonical base64"):  # Go: wrong length key
        NoteVerifier.from_vkey("PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==")
    long_key = base64.b64encode(b"\x01" + bytes(33)).decode()
    with pytest.raises(CheckpointError, match="0x01 and 32 bytes, got 34"):
        NoteVerifier.from_vkey(f"PeterNeumann+00000000+{long_key}")
    with pytest.raises(CheckpointError, match="signature type 0x65 is not supported"):
        NoteVerifier.from_vkey("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
    with pytest.raises(CheckpointError, match="does not match the name and key"):
        NoteVerifier.from_vkey("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")


# ---- evidock checkpoints ------------------------------------------------------------------

def test_a_checkpoint_round_trips(station: StationKey) -> None:
    top = root([leaf_hash(b"a"), leaf_hash(b"b"), leaf_hash(b"c")])
    note = make_checkpoint(ORIGIN, 3, top, ORIGIN, station)
    body, signatures = parse_note(note)
    b64 = base64.b64encode(top).decode()
    assert body == f"{ORIGIN}\n3\n{b64}\n".encode()
    assert note.startswith(body + b"\n\xe2\x80\x94 " + ORIGIN.encode() + b" ")
    verifier = NoteVerifier.for_key(ORIGIN, station.public)
    assert [(s.name, s.key_id) for s in signatures] == [(ORIGIN, verifier.key_id)]
    checkpoint, verified = open_checkpoint(note, [NoteVerifier.from_vkey(verifier.vkey)],
                                           origin=ORIGIN)
    assert checkpoint == Checkpoint(ORIGIN, 3, top) and verified == [verifier]
    assert parse_checkpoint(body).body() == body


def test_empty_and_huge_trees_and_extension_lines(station: StationKey) -> None:
    verifier = NoteVerifier.for_key(ORIGIN, station.public)
    for size, extensions in [(0, ()), (2**64 - 1, ()), (5, ("time 2026-11-20T10:00:00Z",))]:
        note = make_checkpoint(ORIGIN, size, b"\x07" * 32, ORIGIN, station,
                               extensions=extensions)
        checkpoint, _ = open_checkpoint(note, [verifier])
        assert (checkpoint.size, checkpoint.extensions) == (size, extensions)


def test_a_witness_cosigns_without_disturbing_the_log_signature(
        station: StationKey, witness: StationKey) -> None:
    log = NoteVerifier.for_key(ORIGIN, station.public)
    wit = NoteVerifier.for_key("witness.example/w1", witness.public)
    note = checkpoint_note(station)
    cosigned = add_signature(note, wit.name, witness)
    assert cosigned.startswith(note)  # existing lines kept, in order; the new one last
    assert verify_note(cosigned, [log, wit]) == [log, wit]
    assert verify_note(cosigned, [wit]) == [wit]
    again = add_signature(cosigned, wit.name, witness.private)  # re-signing replaces, not adds
    assert again == cosigned
    resigned = add_signature(cosigned, ORIGIN, station)  # the log's line moves to the end
    assert verify_note(resigned, [log, wit]) == [wit, log]
    assert len(parse_note(resigned)[1]) == 2


# ---- tampering ----------------------------------------------------------------------------

def tampered(note: bytes, old: bytes, new: bytes) -> bytes:
    assert old in note
    return note.replace(old, new, 1)


def test_every_change_to_a_signed_checkpoint_is_refused(station: StationKey) -> None:
    verifier = NoteVerifier.for_key(ORIGIN, station.public)
    note = checkpoint_note(station, 3)
    body, (sig,) = parse_note(note)
    b64 = body.split(b"\n")[2]
    other_root = base64.b64encode(b"\x00" * 32)
    does_not_verify = "signature by .* does not verify"
    cases: list[tuple[str, bytes, str]] = [
        ("size", tampered(note, b"\n3\n", b"\n4\n"), does_not_verify),
        ("root", tampered(note, b64, other_root), does_not_verify),
        ("origin", tampered(note, b"station-7\n", b"station-8\n"), does_not_verify),
        ("extra body line", tampered(note, b64 + b"\n", b64 + b"\nextra\n"), does_not_verify),
        ("extra line after signatures", note + b"unexpected\n", "signature line 2 does not"),
        ("missing blank line", note.replace(b"\n\n", b"\n", 1), "no blank line"),
        ("CRLF", note.replace(b"\n", b"\r\n"), "carriage return .* at byte"),
        ("no final newline", note[:-1], "does not end with a newline"),
        ("trailing blank line", note + b"\n", "no signature lines after"),
        ("signature name", tampered(note, b"\xe2\x80\x94 " + ORIGIN.encode(),
                                    b"\xe2\x80\x94 " + ORIGIN.encode() + b"x"),
         "no trusted key signed"),
        ("hyphen for em dash", tampered(note, "\u2014".encode(), b"-"), "em dash"),
        ("NUL", tampered(note, b"station", b"sta\x00tion"), "NUL byte at byte"),
        ("bad UTF-8", tampered(note, b"station", b"sta\xfftion"), "not valid UTF-8"),
    ]
    sig_b64 = base64.b64encode(sig.key_id.to_bytes(4, "big") + sig.signature)
    for i in range(len(sig_b64) - 1):  # every base64 character of the signature
        flipped = sig_b64[:i] + (b"A" if sig_b64[i:i + 1] != b"A" else b"B") + sig_b64[i + 1:]
        cases.append((f"signature char {i}", tampered(note, sig_b64, flipped),
                      "does not verify|no trusted key|canonical"))
    for what, changed, message in cases:
        with pytest.raises(CheckpointError, match=message):
            open_checkpoint(changed, [verifier])
        assert what  # the case names say what was changed when one fails


def test_a_bad_signature_by_a_trusted_key_rejects_the_note_even_if_another_verifies(
        station: StationKey, witness: StationKey) -> None:
    log = NoteVerifier.for_key(ORIGIN, station.public)
    wit = NoteVerifier.for_key("witness.example/w1", witness.public)
    good = add_signature(checkpoint_note(station), wit.name, witness)
    _, (log_sig, wit_sig) = parse_note(good)
    forged = type(wit_sig)(wit_sig.name, wit_sig.key_id, bytes(64))
    bad = good.replace(wit_sig.line.encode(), forged.line.encode())
    assert verify_note(bad, [log]) == [log]  # the witness is not trusted here: ignored
    with pytest.raises(CheckpointError, match=r"witness\.example/w1.* does not verify"):
        verify_note(bad, [log, wit])
    short = type(wit_sig)(wit_sig.name, wit_sig.key_id, b"x")
    with pytest.raises(CheckpointError, match="does not verify"):
        verify_note(good.replace(wit_sig.line.encode(), short.line.encode()), [log, wit])
    assert log_sig.name == ORIGIN


def test_a_known_name_with_another_key_id_is_an_unknown_key(station: StationKey) -> None:
    other = NoteVerifier.for_key(ORIGIN, StationKey(Ed25519PrivateKey.generate()).public)
    with pytest.raises(CheckpointError, match=r"no trusted key signed .*trusted: evidock"):
        verify_note(checkpoint_note(station), [other])


@pytest.mark.parametrize(("body", "message"), [
    (b"origin\n3\n", "has 2 lines"),
    (b"origin\n007\n" + base64.b64encode(bytes(32)) + b"\n", "without leading zeros"),
    (b"origin\n-3\n" + base64.b64encode(bytes(32)) + b"\n", "not a decimal"),
    (b"origin\n+3\n" + base64.b64encode(bytes(32)) + b"\n", "not a decimal"),
    (b"origin\n\xd9\xa3\n" + base64.b64encode(bytes(32)) + b"\n", "not a decimal"),  # Arabic 3
    (b"origin\n18446744073709551616\n" + base64.b64encode(bytes(32)) + b"\n", "larger than 2"),
    (b"origin\n3\n" + base64.b64encode(bytes(31)) + b"\n", "31 bytes, not 32"),
    (b"origin\n3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=\n", "canonical"),
    (b"origin\n3\n" + base64.urlsafe_b64encode(b"\xff" * 32) + b"\n", "not standard base64"),
    (b"\n3\n" + base64.b64encode(bytes(32)) + b"\n", "line 1 of the checkpoint is empty"),
    (b"origin\n3\n" + base64.b64encode(bytes(32)) + b"\n\nx\n", "line 4 .* is empty"),
    (b"origin\n3\n" + base64.b64encode(bytes(32)), "does not end with a newline"),
    (b"origin\n3\r\n" + base64.b64encode(bytes(32)) + b"\n", "carriage return"),
])
def test_malformed_checkpoint_bodies_are_refused(body: bytes, message: str) -> None:
    with pytest.raises(CheckpointError, match=message):
        parse_checkpoint(body)


def test_origins_with_spaces_parse_but_evidock_makes_none(station: StationKey) -> None:
    body = b"go.sum database tree\n1\n" + base64.b64encode(bytes(32)) + b"\n"
    assert parse_checkpoint(body).origin == "go.sum database tree"
    with pytest.raises(CheckpointError, match=r"origin 'a b' contains a space character"):
        make_checkpoint("a b", 1, bytes(32), "a", station)
    with pytest.raises(CheckpointError, match="32 bytes"):
        make_checkpoint(ORIGIN, 1, bytes(31), ORIGIN, station)
    with pytest.raises(CheckpointError, match=r"not an integer in 0\.\.2"):
        make_checkpoint(ORIGIN, -1, bytes(32), ORIGIN, station)
    with pytest.raises(CheckpointError, match="extension line 1 is empty"):
        make_checkpoint(ORIGIN, 1, bytes(32), ORIGIN, station, extensions=[""])
    with pytest.raises(CheckpointError, match="extension line 1 contains a newline"):
        make_checkpoint(ORIGIN, 1, bytes(32), ORIGIN, station, extensions=["a\nb"])


@pytest.mark.parametrize(("name", "problem"), [
    ("", "is empty"), ("a+b", "plus sign"), ("a b", "space character .U\\+0020"),
    ("a\u3000b", "U\\+3000"), ("a\u00a0b", "U\\+00A0"), ("a\x85b", "U\\+0085"),
    ("a\u2009b", "U\\+2009"), ("a\x01b", "control character"),
])
def test_key_names_follow_the_signed_note_rules(name: str, problem: str) -> None:
    with pytest.raises(CheckpointError, match=problem):
        check_key_name(name)
    line = f"\u2014 {name} {base64.b64encode(bytes(70)).decode()}\n"
    with pytest.raises(CheckpointError):
        parse_note(b"text\n\n" + line.encode())


def test_limits(station: StationKey) -> None:
    note = checkpoint_note(station)
    _, (sig,) = parse_note(note)
    many = note + sig.line.encode() * (MAX_SIGNATURES - 1)
    assert len(parse_note(many)[1]) == MAX_SIGNATURES
    with pytest.raises(CheckpointError, match=f"101 signature lines; at most {MAX_SIGNATURES}"):
        parse_note(many + sig.line.encode())
    with pytest.raises(CheckpointError, match="bytes; at most"):
        parse_note(b"x" * (MAX_NOTE_SIZE + 1))
    with pytest.raises(CheckpointError, match="must be bytes, not str"):
        parse_note(note.decode())  # type: ignore[arg-type]
    tiny = "\u2014 a " + base64.b64encode(b"1234").decode() + "\n"
    with pytest.raises(CheckpointError, match="at least one byte, got 4"):
        parse_note(b"text\n\n" + tiny.encode())


def test_a_repeated_signature_line_counts_once(station: StationKey) -> None:
    note = checkpoint_note(station)
    _, (sig,) = parse_note(note)
    log = NoteVerifier.for_key(ORIGIN, station.public)
    assert verify_note(note + sig.line.encode(), [log, log]) == [log]


# ---- fuzzing ------------------------------------------------------------------------------

FIXED_KEY = StationKey(Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
FIXED_NOTE = add_signature(
    make_checkpoint(ORIGIN, 7, bytes(range(32)), ORIGIN, FIXED_KEY), "w", FIXED_KEY)
FIXED_VERIFIERS = [NoteVerifier.for_key(ORIGIN, FIXED_KEY.public),
                   NoteVerifier.for_key("w", FIXED_KEY.public)]


def exercise(data: bytes) -> None:
    """Everything that reads untrusted bytes either works or raises CheckpointError."""
    for action in (lambda: parse_note(data), lambda: parse_checkpoint(data),
                   lambda: verify_note(data, FIXED_VERIFIERS),
                   lambda: open_checkpoint(data, FIXED_VERIFIERS, origin=ORIGIN),
                   lambda: add_signature(data, "w2", FIXED_KEY)):
        with contextlib.suppress(CheckpointError):
            action()


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=400))
def test_fuzz_random_bytes(data: bytes) -> None:
    exercise(data)


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_fuzz_mutated_notes(data: Any) -> None:
    note = bytearray(FIXED_NOTE)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(note)))
        kind = data.draw(st.sampled_from(["insert", "delete", "replace"]))
        piece = data.draw(st.sampled_from([b"\n", b"\r", b" ", b"+", b"=", "\u2014".encode(),
                                           b"\x00", b"\xff", b"A", b"0", b"\xe2\x80"]))
        if kind == "insert":
            note[at:at] = piece
        elif kind == "delete":
            del note[at:at + len(piece)]
        else:
            note[at:at + len(piece)] = piece
    exercise(bytes(note))
    if bytes(note) != FIXED_NOTE:  # a changed note never verifies as the original
        try:
            checkpoint, _ = open_checkpoint(bytes(note), FIXED_VERIFIERS)
        except CheckpointError:
            return
        assert checkpoint == parse_checkpoint(parse_note(FIXED_NOTE)[0])


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_fuzz_verifier_keys(text: str) -> None:
    try:
        verifier = NoteVerifier.from_vkey(text)
    except CheckpointError:
        return
    assert verifier.vkey == text


@settings(max_examples=100, deadline=None)
@given(origin=st.text(min_size=1, max_size=30).filter(lambda o: all(
    c not in " +" and not c.isspace() and ord(c) >= 0x20 for c in o)),
       size=st.integers(0, 2**64 - 1), top=st.binary(min_size=32, max_size=32),
       extensions=st.lists(st.text(min_size=1, max_size=10).filter(
           lambda e: "\n" not in e and all(ord(c) >= 0x20 for c in e)), max_size=3))
def test_any_valid_checkpoint_round_trips(origin: str, size: int, top: bytes,
                                          extensions: list[str]) -> None:
    try:
        note = make_checkpoint(origin, size, top, "k", FIXED_KEY, extensions=extensions)
    except CheckpointError as exc:  # surrogates and the odd Unicode space are refused
        assert "origin" in str(exc) or "extension" in str(exc)
        return
    checkpoint, _ = open_checkpoint(note, [NoteVerifier.for_key("k", FIXED_KEY.public)],
                                    origin=origin)
    assert checkpoint == Checkpoint(origin, size, top, tuple(extensions))
    assert make_checkpoint(origin, size, top, "k", FIXED_KEY, extensions=extensions) == note


def test_the_worked_example_in_the_docs_is_what_the_code_computes() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "ledger-crypto.md").read_text()
    leaf_hashes = [leaf_hash(x) for x in (b"a", b"b", b"c")]
    tree = MerkleTree(leaf_hashes)
    values = [*leaf_hashes, tree.root(2), tree.root(3)]
    seed = hashlib.sha256(b"evidock docs/ledger-crypto.md example key").digest()
    key = StationKey(Ed25519PrivateKey.from_private_bytes(seed))
    name = "evidock.example/station-1"
    verifier = NoteVerifier.for_key(name, key.public)
    note = make_checkpoint(name, 3, tree.root(3), name, key)
    _, (sig,) = parse_note(note)
    expected_text = [seed.hex(), verifier.public_key.hex(), f"{verifier.key_id:08x}",
                     verifier.vkey, note.decode(), sig.signature.hex(),
                     name.encode().hex(), *(v.hex() for v in values)]
    for text in expected_text:
        assert text in doc, text
    assert tree.inclusion_proof(0) == leaf_hashes[1:]
    assert tree.inclusion_proof(2) == [tree.root(2)]
    assert tree.consistency_proof(1) == leaf_hashes[1:]
    assert tree.consistency_proof(2) == [leaf_hashes[2]]
