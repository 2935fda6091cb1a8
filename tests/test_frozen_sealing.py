"""Known answers for the frozen crypto of the revision that sealed research data
(`migrations/frozen/sealing_v1.py`), and proof that what it wrote today's code opens."""

from __future__ import annotations

import pytest

from app.db.sealed import keyed_hash
from app.keys import Keys, Use, WrongKey
from app.studies.pseudonyms import export_order, pseudonym
from migrations.frozen import sealing_v1 as v1

SERVER_KEY = bytes(range(32))


def test_the_frozen_crypto_gives_its_known_answers():
    research = v1.derive(SERVER_KEY, v1.RESEARCH)
    index = v1.derive(SERVER_KEY, v1.RESEARCH_INDEX)
    assert research.hex() == "3ed74694840c6fbf63a4037981f42370138e4c90cb4309b7e1c896685526ca97"
    assert index.hex() == "69f1b98243a61f1cd19f7b1343efe672d30e0070178333f032516a27764c22af"
    sealed = v1.seal(research, v1.RESEARCH, b"Pat Doe", context="contacts.name", nonce=bytes(12))
    assert sealed.hex() == (
        "0100000000000000000000000022eac9fc27377a413b2ec3df372870a65112aa1cfb624a"
    )
    assert v1.open_sealed(research, v1.RESEARCH, sealed, context="contacts.name") == b"Pat Doe"
    with pytest.raises(v1.WrongKey):
        v1.open_sealed(research, v1.RESEARCH, sealed, context="contacts.email")
    assert v1.keyed_hash(index, "email", " Pat@Example.org ") == (
        "961e92080a94a6dacc959417d722d6a72cec7ac5d1039167753ccae2ad9ff38f"
    )
    assert v1.keyed_hash(index, "phone", "+1 (555) 010-0100") == (
        "dcc108b7057d40aa0cf7815454d27dc03e1ab03416042cae94cacd30fade4a7b"
    )
    assert v1.keyed_hash(index, "email", "  ") is None
    assert v1.export_order(SERVER_KEY, "PS-PHL-0001") == (
        "0037d3660c08ab4e766baf9ea3e6b5fc4f8d46f3d86dd3c186527a6f0ab9d57f"
    )
    assert v1.pseudonym(SERVER_KEY, "PS-PHL-0001") == "PZQJJZ75RI2VR"
    assert v1.fingerprint(SERVER_KEY) == (
        "719f5f90b4aedc675b0ef80dfc370f4e410f2ba695b09efbcfc5d328810201ce"
    )
    assert v1.json_bytes({"a": "\u00e9", "b": [1, None]}) == b'{"a":"\xc3\xa9","b":[1,null]}'


def test_what_the_migration_sealed_opens_with_the_application_and_hashes_alike():
    keys = Keys(SERVER_KEY)
    research = v1.derive(SERVER_KEY, v1.RESEARCH)
    sealed = v1.seal(research, v1.RESEARCH, "Zo\u00eb".encode(), context="contacts.name")
    assert keys.open(Use.research, sealed, context="contacts.name").decode() == "Zo\u00eb"
    with pytest.raises(WrongKey):
        Keys(bytes(32)).open(Use.research, sealed, context="contacts.name")
    index = v1.derive(SERVER_KEY, v1.RESEARCH_INDEX)
    for kind, value in (("email", "A@B.example "), ("phone", "+44 20 7946 0000")):
        assert v1.keyed_hash(index, kind, value) == keyed_hash(keys, kind, value)
    assert v1.export_order(SERVER_KEY, "X-1") == export_order(SERVER_KEY, "X-1")
    assert v1.pseudonym(SERVER_KEY, "X-1") == pseudonym(SERVER_KEY, "X-1")
