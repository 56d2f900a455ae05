"""`amidcc decode`: vectors from protocol-facts.md (1.3 frames, 3.5 example 8) through the CLI."""

from __future__ import annotations

import json

import pytest

from amidcc.cli import main

# C12.22 standard example 8 (Wireshark test capture; facts 3.5), key id 2.
EXAMPLE8_REQUEST = (
    "604fa20580037bc175a60480027b04a803020103ac0fa20da00ba109800102810448f3d061be2a28288126"
    "8841d10cda76206811b36f781489a11997773e117cb07aa3aa40374a7107c50da7f799c5d4e8"
)
EXAMPLE8_RESPONSE = (
    "6048a20480027b04a403020103a60580037bc175a803020103ac0fa20da00ba109800102810448f3d060"
    "be1e281c811a884baee4349631ab5e56a0e6e0e90dfad558591ee4ea334cb268"
)
KEY = "2:01020304050607080102030405060708"


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, object]:
    code = main([*argv, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_c1218_request_then_response_decodes_with_context(capsys: pytest.CaptureFixture[str]) -> None:
    # S13 real meter: partial read ST23 offset 0 count 8, ACK, read response.
    code, items = run_json(
        capsys,
        "decode",
        "c1218",
        "EE 00 20 00 00 08 3F 00 17 00 00 00 00 08 03 F2",
        "06",
        "EE 00 20 00 00 0C 00 00 08 FB 13 04 02 4D 89 1A 00 FC 92 F2",
    )
    assert code == 0
    assert isinstance(items, list)
    assert items[0]["psem"]["request"] == {
        "type": "PartialReadOffset", "table_id": 23, "offset": 0, "octet_count": 8,
    }  # fmt: skip
    assert items[1] == {"link": "ACK"}
    assert items[2]["psem"]["response"]["data"] == "fb1304024d891a00"
    assert items[2]["psem"]["in_reply_to"] == "Partial Read Offset"


def test_c1218_bad_crc_says_nak_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    code, items = run_json(capsys, "decode", "c1218", "EE0000000001201311")
    assert code == 1
    assert isinstance(items, list)
    assert items[0]["bad_frame"] == "crc-error"
    assert items[0]["answer_with"] == "NAK"


def test_c1218_garbage_is_skipped_and_counted(capsys: pytest.CaptureFixture[str]) -> None:
    code, items = run_json(capsys, "decode", "c1218", "55 55 EE 00 00 00 00 01 20 13 10")
    assert code == 0
    assert isinstance(items, list)
    assert items[0]["psem"]["service"] == "Identify"
    assert items[-1] == {"skipped_bytes": 2}


def test_c1218_not_hex_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode", "c1218", "EEZZ"]) == 2
    assert "not hex" in capsys.readouterr().err


def test_c1222_example8_request_decrypts(capsys: pytest.CaptureFixture[str]) -> None:
    code, view = run_json(capsys, "decode", "c1222", EXAMPLE8_REQUEST, "--key", KEY)
    assert code == 0
    assert isinstance(view, dict)
    assert view["apdu"]["called_ap_title"] == ".123.8437"
    assert view["authenticated"] is True
    assert [s["service"] for s in view["services"]] == ["Security", "Partial Read Offset"]
    assert bytes.fromhex(view["services"][0]["request"]["password"]).rstrip() == b"PASSWORD"


def test_c1222_example8_response_without_request_guesses_read(capsys: pytest.CaptureFixture[str]) -> None:
    code, view = run_json(capsys, "decode", "c1222", EXAMPLE8_RESPONSE, "--key", KEY)
    assert code == 0
    assert isinstance(view, dict)
    service = view["services"][0]
    assert service["guessed"] is True
    assert bytes.fromhex(service["response"]["data"]) == b"MANUFACTURER SN "


def test_c1222_ciphertext_without_key_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    code, view = run_json(capsys, "decode", "c1222", EXAMPLE8_REQUEST)
    assert code == 0
    assert isinstance(view, dict)
    assert "give --key" in view["epsem"]


def test_c1222_wrong_mac_is_an_error_naming_the_cause(capsys: pytest.CaptureFixture[str]) -> None:
    tampered = EXAMPLE8_REQUEST[:-1] + ("9" if EXAMPLE8_REQUEST[-1] != "9" else "8")
    code, view = run_json(capsys, "decode", "c1222", tampered, "--key", KEY)
    assert code == 1
    assert isinstance(view, dict)
    assert "MAC" in view["security_error"]
    assert view["answer_with"] == "SME"


def test_c1222_wrong_base_oid_fails_authentication(capsys: pytest.CaptureFixture[str]) -> None:
    code, view = run_json(
        capsys, "decode", "c1222", EXAMPLE8_REQUEST, "--key", KEY, "--base-oid", "1.3.6.1"
    )
    assert code == 1
    assert isinstance(view, dict)
    assert "security_error" in view


@pytest.mark.parametrize("key", ["2", "x:00", "2:0102", "300:" + "00" * 16])
def test_c1222_bad_key_is_a_usage_error(key: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode", "c1222", EXAMPLE8_REQUEST, "--key", key]) == 2
    assert "--key" in capsys.readouterr().err


def test_c1222_garbage_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, view = run_json(capsys, "decode", "c1222", "6105a203800101")
    assert code == 1
    assert isinstance(view, dict)
    assert view["answer_with"] in {"ERR", "SNS", "IAR"}
