"""Tests the recipient CSV reader on good and bad files."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest

from shared.errors import CsvError, ValidationFailed
from shared.parsing.csv_rows import AcceptedRow, RecipientCsv, RejectedRow, column_key
from shared.parsing.phones import NO_REGION_REASON

DATA = Path(__file__).resolve().parent.parent / "data" / "recipients"
Row = AcceptedRow | RejectedRow


def write(tmp_path: Path, content: str | bytes, name: str = "r.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def read(
    path: Path,
    keys: Sequence[str] = (),
    constants: dict[str, str] | None = None,
    region: str | None = "ID",
) -> list[Row]:
    return list(RecipientCsv(path, required_keys=keys, constants=constants or {}, default_region=region))


def csv_error(path: Path, keys: Sequence[str] = (), **kwargs: object) -> str:
    with pytest.raises(CsvError) as caught:
        RecipientCsv(path, required_keys=keys, default_region="ID", **kwargs)  # type: ignore[arg-type]
    message = str(caught.value)
    assert "\n" not in message
    return message


# --- good files ----------------------------------------------------------------------------------------


def test_simple_file(tmp_path: Path) -> None:
    path = write(tmp_path, "phone,first_name,order_id\n+6281234567890,Ada,A-1\n0812-3456-7891,Bob,A-2\n")
    reader = RecipientCsv(path, required_keys=["first_name", "order_id"], default_region="ID")
    assert reader.columns == ["phone", "first_name", "order_id"]
    assert reader.delimiter == ","
    assert list(reader) == [
        AcceptedRow(1, "+6281234567890", {"first_name": "Ada", "order_id": "A-1"}),
        AcceptedRow(2, "+6281234567891", {"first_name": "Bob", "order_id": "A-2"}),
    ]


def test_can_be_iterated_twice(tmp_path: Path) -> None:
    path = write(tmp_path, "phone\n+6281234567890\n")
    reader = RecipientCsv(path, required_keys=[], default_region=None)
    assert list(reader) == list(reader) == [AcceptedRow(1, "+6281234567890", {})]


@pytest.mark.parametrize(
    ("prefix", "newline"),
    [(b"", b"\n"), (b"\xef\xbb\xbf", b"\n"), (b"", b"\r\n"), (b"\xef\xbb\xbf", b"\r\n")],
)
def test_bom_and_line_endings(tmp_path: Path, prefix: bytes, newline: bytes) -> None:
    lines = [b"phone,name", b"+6281234567890,Ad\xc3\xa1", b"+6281234567891,Bob"]
    path = write(tmp_path, prefix + newline.join(lines) + newline)
    reader = RecipientCsv(path, required_keys=["name"], default_region=None)
    assert reader.columns == ["phone", "name"]
    assert [r.params for r in reader if isinstance(r, AcceptedRow)] == [{"name": "Adá"}, {"name": "Bob"}]


def test_last_line_without_newline(tmp_path: Path) -> None:
    path = write(tmp_path, "phone,name\r\n+6281234567890,Ada")
    assert read(path, ["name"]) == [AcceptedRow(1, "+6281234567890", {"name": "Ada"})]


@pytest.mark.parametrize("delimiter", [";", "\t", ","])
def test_delimiter_is_found_in_the_header(tmp_path: Path, delimiter: str) -> None:
    other = "," if delimiter != "," else ";"
    text = f"phone{delimiter}name{delimiter}note\n+6281234567890{delimiter}Ada{delimiter}a{other}b\n"
    reader = RecipientCsv(write(tmp_path, text), required_keys=["name"], default_region=None)
    assert reader.delimiter == delimiter
    assert list(reader) == [AcceptedRow(1, "+6281234567890", {"name": "Ada", "note": f"a{other}b"})]


def test_delimiter_inside_quotes_does_not_count(tmp_path: Path) -> None:
    path = write(tmp_path, '"phone";"name, full"\n+6281234567890;"Ada, L."\n')
    reader = RecipientCsv(path, required_keys=[], default_region=None)
    assert reader.delimiter == ";"
    assert reader.columns == ["phone", "name,_full"]
    assert list(reader) == [AcceptedRow(1, "+6281234567890", {"name,_full": "Ada, L."})]


def test_header_names_ignore_case_and_spaces(tmp_path: Path) -> None:
    path = write(tmp_path, " Phone ,First Name,ORDER_ID\n+6281234567890, Ada ,A-1\n")
    reader = RecipientCsv(path, required_keys=["first_name", "order_id"], default_region=None)
    assert reader.columns == ["phone", "first_name", "order_id"]
    assert reader.header_names == [" Phone ", "First Name", "ORDER_ID"]
    assert list(reader) == [AcceptedRow(1, "+6281234567890", {"first_name": "Ada", "order_id": "A-1"})]


def test_column_key() -> None:
    assert column_key("  First   Name ") == "first_name"
    assert column_key("PHONE") == "phone"
    assert column_key("") == ""


def test_positional_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "phone,1,2\n+6281234567890,Ada,A-1\n")
    assert read(path, ["1", "2"]) == [AcceptedRow(1, "+6281234567890", {"1": "Ada", "2": "A-1"})]


def test_header_and_button_columns_and_constants(tmp_path: Path) -> None:
    path = write(
        tmp_path, "phone,first_name,button_0_1\n+6281234567890,Ada,trk-1\n+6281234567891,Bob,trk-2\n"
    )
    keys = ["first_name", "header_1", "button_0_1"]
    constants = {"header_1": "https://cdn.example/banner.jpg", "button_0_1": "ignored"}
    rows = read(path, keys, constants)
    assert rows == [
        AcceptedRow(
            1,
            "+6281234567890",
            {"header_1": "https://cdn.example/banner.jpg", "button_0_1": "trk-1", "first_name": "Ada"},
        ),
        AcceptedRow(
            2,
            "+6281234567891",
            {"header_1": "https://cdn.example/banner.jpg", "button_0_1": "trk-2", "first_name": "Bob"},
        ),
    ]


def test_constants_alone_fill_every_key(tmp_path: Path) -> None:
    path = write(tmp_path, "phone\n+6281234567890\n")
    assert read(path, ["1"], {"1": "friend"}) == [AcceptedRow(1, "+6281234567890", {"1": "friend"})]


def test_bad_constant_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "phone\n+6281234567890\n")
    with pytest.raises(ValidationFailed, match=r"^constant 1: empty value$"):
        read(path, ["1"], {"1": " "})


def test_other_columns_are_kept_unchecked(tmp_path: Path) -> None:
    path = write(tmp_path, 'phone,name,notes,\n+6281234567890,Ada,"line one\nline two",zzz\n')
    assert read(path, ["name"]) == [
        AcceptedRow(1, "+6281234567890", {"name": "Ada", "notes": "line one\nline two"})
    ]


def test_invalid_phone_rows_are_rejected(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "phone,name\n+6281234567890,Ada\n  n/a ,Bob\n+62 81,Cy\n,Dee\n0812-3456-7890,Eve\n+999 1234567,Fay\n",
    )
    assert read(path, ["name"]) == [
        AcceptedRow(1, "+6281234567890", {"name": "Ada"}),
        RejectedRow(2, "n/a", "not a valid phone number (contains 'n')"),
        RejectedRow(3, "+62 81", "too short for ID"),
        RejectedRow(4, "", "empty"),
        AcceptedRow(5, "+6281234567890", {"name": "Eve"}),  # duplicates are the service's business
        RejectedRow(6, "+999 1234567", "unknown country code"),
    ]


def test_national_numbers_need_a_region(tmp_path: Path) -> None:
    path = write(tmp_path, "phone\n0812-3456-7890\n+6281234567890\n")
    assert read(path, region=None) == [
        RejectedRow(1, "0812-3456-7890", NO_REGION_REASON),
        AcceptedRow(2, "+6281234567890", {}),
    ]


def test_unsendable_values_are_rejected_naming_the_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "phone,first_name,order_id\n"
        '+6281234567890,,A-1\n+6281234567891,Ada,"x\ty"\n+6281234567892,"a     b",A-3\n',
    )
    assert read(path, ["first_name", "order_id"]) == [
        RejectedRow(1, "", "first_name: empty value"),
        RejectedRow(2, "x\ty", "order_id: contains a tab (WhatsApp refuses it)"),
        RejectedRow(3, "a     b", "first_name: more than 4 spaces in a row (WhatsApp refuses it)"),
    ]


def test_column_overrides_constant_even_when_empty(tmp_path: Path) -> None:
    path = write(tmp_path, "phone,first_name\n+6281234567890,\n")
    assert read(path, ["first_name"], {"first_name": "friend"}) == [
        RejectedRow(1, "", "first_name: empty value")
    ]


def test_wrong_cell_counts_are_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "phone,a,b,c\n+6281234567890,1,2\n+6281234567891,1,2,3,4\n+6281234567892,1,2,3\n")
    assert read(path) == [
        RejectedRow(1, "+6281234567890,1,2", "row has 3 cells, header has 4"),
        RejectedRow(2, "+6281234567891,1,2,3,4", "row has 5 cells, header has 4"),
        AcceptedRow(3, "+6281234567892", {"a": "1", "b": "2", "c": "3"}),
    ]


def test_lone_cr_ends_a_line_unless_quoted(tmp_path: Path) -> None:
    path = write(tmp_path, 'phone,name\n+6281234567890,Ada\r+6281234567891,"B\rb"\n')
    assert read(path, ["name"]) == [
        AcceptedRow(1, "+6281234567890", {"name": "Ada"}),
        RejectedRow(2, "B\rb", "name: contains a line break (WhatsApp refuses it)"),
    ]


def test_long_rejected_values_are_cut(tmp_path: Path) -> None:
    path = write(tmp_path, "phone\n" + "9" * 500 + "\n")
    (rejected,) = read(path)
    assert isinstance(rejected, RejectedRow)
    assert len(rejected.value) == 200
    assert rejected.value.endswith("…")


def test_blank_lines_are_skipped_but_counted(tmp_path: Path) -> None:
    path = write(tmp_path, "\n\nphone,name\n\n+6281234567890,Ada\n,\n  ,  \n\r\n+6281234567891,Bob\n\n")
    assert read(path, ["name"]) == [
        AcceptedRow(2, "+6281234567890", {"name": "Ada"}),
        AcceptedRow(6, "+6281234567891", {"name": "Bob"}),
    ]


def test_excel_export(tmp_path: Path) -> None:
    """A real-looking Excel file: BOM, CRLF, ';', spaced header names, a cell with a line break."""
    path = tmp_path / "excel.csv"
    shutil.copy(DATA / "excel_semicolon_bom_crlf.csv", path)
    reader = RecipientCsv(path, required_keys=["first_name", "order_id"], default_region="ID")
    assert reader.delimiter == ";"
    assert reader.columns == ["phone", "first_name", "order_id", "notes"]
    assert list(reader) == [
        AcceptedRow(1, "+6281234567890", {"first_name": "Ada", "order_id": "A-1", "notes": "first"}),
        AcceptedRow(2, "+6281234567891", {"first_name": "Lovelace; Ada", "order_id": "A-2", "notes": ""}),
        RejectedRow(4, "not a number", "not a valid phone number (contains 'n')"),
        AcceptedRow(
            5, "+6281234567892", {"first_name": "Émile", "order_id": "A-4", "notes": "multi\nline note"}
        ),
        RejectedRow(6, "", "first_name: empty value"),
    ]


# --- bad files -----------------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    assert csv_error(path) == f"recipients file {path} does not exist"


def test_directory_is_not_a_regular_file(tmp_path: Path) -> None:
    assert csv_error(tmp_path) == f"recipients file {tmp_path} is not a regular file"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_is_not_a_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    assert csv_error(fifo).endswith("is not a regular file")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads everything")
def test_unreadable_file(tmp_path: Path) -> None:
    path = write(tmp_path, "phone\n+6281234567890\n")
    path.chmod(0)
    assert csv_error(path) == f"cannot read recipients file {path}: permission denied"


@pytest.mark.parametrize("content", [b"", b"\xef\xbb\xbf", b"\n\n", b"\r\n  \r\n", b"\xef\xbb\xbf\r\n"])
def test_empty_file(tmp_path: Path, content: bytes) -> None:
    path = write(tmp_path, content)
    assert csv_error(path) == f"recipients file {path} is empty"


@pytest.mark.parametrize(
    "content", ["phone,name", "phone,name\n", "phone,name\r\n\r\n", "phone,name\n,\n , \n"]
)
def test_header_only(tmp_path: Path, content: str) -> None:
    path = write(tmp_path, content)
    assert csv_error(path) == f"recipients file {path} has a header but no data rows"


def test_missing_phone_column_names_what_was_found(tmp_path: Path) -> None:
    path = write(tmp_path, "Number,First Name\n+6281234567890,Ada\n")
    assert csv_error(path) == (
        f"recipients file {path} has no 'phone' column in its first line (found 'Number', 'First Name'); "
        "the first line must name the columns, e.g. phone,first_name"
    )


def test_file_without_header(tmp_path: Path) -> None:
    path = write(tmp_path, "+6281234567890,Ada\n+6281234567891,Bob\n")
    assert "has no 'phone' column in its first line (found '+6281234567890', 'Ada')" in csv_error(path)


def test_missing_parameter_column(tmp_path: Path) -> None:
    path = write(tmp_path, "phone,order_id\n+6281234567890,A-1\n")
    message = csv_error(path, ["first_name", "order_id"], template_label="template order_update")
    assert message == "column 'first_name' missing: template order_update needs first_name, order_id"


def test_missing_parameter_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "phone\n+6281234567890\n")
    assert csv_error(path, ["1", "2"]) == "columns '1', '2' missing: the template needs 1, 2"


def test_constant_covers_a_missing_column(tmp_path: Path) -> None:
    path = write(tmp_path, "phone\n+6281234567890\n")
    assert csv_error(path, ["1", "2"], constants={"1": "x"}) == "column '2' missing: the template needs 1, 2"


@pytest.mark.parametrize("header", ["phone,name,Name", "phone,Phone", "phone, first name ,First_Name"])
def test_duplicate_header_names(tmp_path: Path, header: str) -> None:
    path = write(tmp_path, header + "\n+6281234567890,a,b\n")
    assert "more than once in its header" in csv_error(path)


def test_undecodable_header_fails_when_opening(tmp_path: Path) -> None:
    path = write(tmp_path, b"phone,pr\xe9nom\n+6281234567890,Ada\n")
    assert csv_error(path) == (
        f"recipients file {path} line 1 is not UTF-8 (byte 0xe9 at column 9); save it as 'CSV UTF-8'"
    )


def test_undecodable_header_after_blank_lines(tmp_path: Path) -> None:
    path = write(tmp_path, b"\r\n\r\nphone,pr\xe9nom\r\n")
    assert "line 3 is not UTF-8" in csv_error(path)


def test_undecodable_row_fails_while_iterating(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    shutil.copy(DATA / "latin1_row3.csv", path)
    reader = RecipientCsv(path, required_keys=["first_name"], default_region=None)  # opening succeeds
    seen: list[Row] = []
    with pytest.raises(CsvError) as caught:
        seen.extend(reader)
    assert str(caught.value) == (
        f"recipients file {path} line 4 is not UTF-8 (byte 0xe9 at column 19); save it as 'CSV UTF-8'"
    )
    assert [r.row for r in seen] == [1, 2]


def test_undecodable_byte_far_into_the_file_names_its_line(tmp_path: Path) -> None:
    body = b"".join(b"+62812%08d,name\n" % i for i in range(5000))
    path = write(tmp_path, b"phone,name\n" + body + b"+6281234567890,\xff\n" + body)
    reader = RecipientCsv(path, required_keys=[], default_region=None)
    with pytest.raises(CsvError, match=r"line 5002 is not UTF-8 \(byte 0xff at column 16\)"):
        for _ in reader:
            pass


def test_undecodable_first_data_row_is_reported_by_iteration(tmp_path: Path) -> None:
    path = write(tmp_path, b"phone,name\n+6281234567890,\xc3\n")
    reader = RecipientCsv(path, required_keys=["name"], default_region=None)
    with pytest.raises(CsvError, match="line 2 is not UTF-8"):
        list(reader)


@pytest.mark.parametrize("bom", [b"\xff\xfe", b"\xfe\xff"])
def test_utf16_file(tmp_path: Path, bom: bytes) -> None:
    encoding = "utf-16-le" if bom == b"\xff\xfe" else "utf-16-be"
    path = write(tmp_path, bom + "phone\n+6281234567890\n".encode(encoding))
    assert csv_error(path).endswith("is UTF-16 (Excel's 'Unicode Text'); save it as 'CSV UTF-8'")


def test_cr_only_line_endings(tmp_path: Path) -> None:
    path = write(tmp_path, "phone,name\r+6281234567890,Ada\r")
    assert csv_error(path).endswith("has old Mac line endings (CR only); save it as 'CSV UTF-8'")


def test_unclosed_quote_in_header(tmp_path: Path) -> None:
    path = write(tmp_path, 'phone,"name\n+6281234567890,Ada\n')
    assert csv_error(path).endswith("has an unclosed quote in its header (line 1)")


def test_binary_file(tmp_path: Path) -> None:
    path = write(tmp_path, (bytes(range(128, 256)) + bytes(range(128))) * 8)
    assert "is not UTF-8" in csv_error(path)


def test_huge_field_fails_while_iterating(tmp_path: Path) -> None:
    path = write(tmp_path, "phone,name\n+6281234567890," + "x" * 200_000 + "\n")
    reader = RecipientCsv(path, required_keys=[], default_region=None)
    with pytest.raises(CsvError, match=r"line 2: field larger than field limit"):
        list(reader)


def test_file_changed_between_opening_and_reading(tmp_path: Path) -> None:
    path = write(tmp_path, "phone,name\n+6281234567890,Ada\n")
    reader = RecipientCsv(path, required_keys=[], default_region=None)
    path.write_text("phone,other\n+6281234567890,Ada\n")
    with pytest.raises(CsvError, match="changed while it was being read"):
        list(reader)
