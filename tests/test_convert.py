"""`convert reuters-sgml`: Reuters-21578's SGML files into the JSON lines configs/reuters.yaml reads."""

import json
import tarfile

import pytest

from tests.conftest import REPO_ROOT
from toolkit import cli
from toolkit.config import load_config
from toolkit.data import DataError
from toolkit.data.reuters import convert_reuters_sgml, read_reuters_sgml

HEADER = '<!DOCTYPE lewis SYSTEM "lewis.dtd">\n'


def _document(newid, split, topics, text, topics_attribute="YES"):
    topics_element = "".join(f"<D>{topic}</D>" for topic in topics)
    return (
        f'<REUTERS TOPICS="{topics_attribute}" LEWISSPLIT="{split}" CGISPLIT="TRAINING-SET" OLDID="{5000 + newid}" '
        f'NEWID="{newid}">\n<DATE>26-FEB-1987 15:01:01.79</DATE>\n<TOPICS>{topics_element}</TOPICS>\n'
        f"<PLACES><D>usa</D></PLACES>\n<PEOPLE></PEOPLE>\n<ORGS></ORGS>\n<EXCHANGES></EXCHANGES>\n<COMPANIES></COMPANIES>\n"
        f"<UNKNOWN> &#5;&#5;&#5;C T\n&#22;&#22;&#1;f0704&#31;reute\nu f BC-X 02-26 0064</UNKNOWN>\n{text}\n</REUTERS>\n"
    )


# Two files: several topics in one document, a topic only in train (barley) and one only in test
# (rice), TOPICS="NO", NOT-USED, a story without BODY (BRIEF), one without TITLE and BODY (UNPROC),
# entities, control characters, a Latin-1 byte, and a document with no topic at all.
FILE_0 = HEADER + "".join(
    [
        _document(
            1,
            "TRAIN",
            ["grain", "wheat"],
            "<TEXT>&#2;\n<TITLE>U.S. WHEAT &lt;WHT&gt; EXPORTS RISE</TITLE>\n<DATELINE>    WASHINGTON, Feb 26 - </DATELINE>"
            "<BODY>Wheat exports rose, the &lt;USDA> said.\n Reuter\n&#3;</BODY></TEXT>",
        ),
        _document(
            2, "TRAIN", ["barley"], "<TEXT>&#2;\n<TITLE>BARLEY ONLY</TITLE>\n<BODY>Barley story.\n&#3;</BODY></TEXT>"
        ),
        _document(
            3, "TRAIN", ["barley", "grain"], "<TEXT>&#2;\n<TITLE>MIXED</TITLE>\n<BODY>Grain and barley.</BODY></TEXT>"
        ),
        _document(4, "TRAIN", ["wheat"], "<TEXT>&#2;\n<TITLE>NOT IN TOPICS</TITLE>\n<BODY>x</BODY></TEXT>", "NO"),
        _document(5, "NOT-USED", ["wheat"], "<TEXT>&#2;\n<TITLE>NOT USED</TITLE>\n<BODY>x</BODY></TEXT>"),
        _document(6, "TRAIN", [], "<TEXT>&#2;\n<TITLE>NO TOPIC</TITLE>\n<BODY>x</BODY></TEXT>"),
    ]
)
FILE_1 = HEADER + "".join(
    [
        _document(
            7, "TEST", ["wheat"], '<TEXT TYPE="BRIEF">&#2;\n<TITLE>WHEAT BRIEF M\xfcNCHEN</TITLE>\n&#3;\n</TEXT>'
        ),
        _document(
            8,
            "TEST",
            ["grain", "rice"],
            '<TEXT TYPE="UNPROC">&#2;\nGRAIN TABLE\n  rice 1.0 &amp; grain 2.0\n&#3;</TEXT>',
        ),
        _document(9, "TEST", ["rice"], "<TEXT>&#2;\n<TITLE>RICE ONLY</TITLE>\n<BODY>Rice.</BODY></TEXT>"),
    ]
)


def _write_sgml(folder, files=(FILE_0, FILE_1)):
    folder.mkdir(parents=True, exist_ok=True)
    for number, text in enumerate(files):
        (folder / f"reut2-{number:03d}.sgm").write_bytes(text.encode("latin-1"))
    (folder / "lewis.dtd").write_text("<!-- not read -->")
    return folder


def _lines(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_modapte_r90_line_by_line(tmp_path):
    result = convert_reuters_sgml(_write_sgml(tmp_path / "sgml"), tmp_path / "out")
    assert _lines(tmp_path / "out" / "train.jsonl") == [
        {
            "id": "1",
            "text": "U.S. WHEAT <WHT> EXPORTS RISE\nWheat exports rose, the <USDA> said.\n Reuter",
            "labels": ["grain", "wheat"],
        },
        {"id": "3", "text": "MIXED\nGrain and barley.", "labels": ["grain"]},
    ]
    assert _lines(tmp_path / "out" / "test.jsonl") == [
        {"id": "7", "text": "WHEAT BRIEF M\u00fcNCHEN", "labels": ["wheat"]},
        {"id": "8", "text": "GRAIN TABLE\n  rice 1.0 & grain 2.0", "labels": ["grain"]},
    ]
    assert (tmp_path / "out" / "labels.txt").read_text() == "grain\nwheat\n"
    assert result.labels == ["grain", "wheat"] and result.dropped_topics == ["barley", "rice"]
    assert (result.files_read, result.documents, result.written) == (2, 9, {"train": 2, "test": 2})
    assert dict(result.without_r90_topic) == {"train": 1, "test": 1}
    assert "wrote 2 train, 2 test (ModApte) with 2 topics (R90)" in result.summary()
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["labels.txt", "test.jsonl", "train.jsonl"]


def test_the_output_reads_with_the_shipped_config(tmp_path, monkeypatch):
    convert_reuters_sgml(_write_sgml(tmp_path / "sgml"), tmp_path / "shared" / "data" / "mlc" / "reuters_r90")
    monkeypatch.setenv("TOOLKIT_SHARED_DIR", str(tmp_path / "shared"))
    config = load_config(REPO_ROOT / "configs" / "reuters.yaml")
    train = config.data.read("train")
    assert train.labels == [["grain", "wheat"], ["grain"]]
    assert train.texts[1] == "MIXED\nGrain and barley."
    assert train.label_names == ["grain", "wheat"]
    test = load_config(
        REPO_ROOT / "configs" / "reuters.yaml",
        overrides=[f"data.test={tmp_path}/shared/data/mlc/reuters_r90/test.jsonl"],
    )
    assert len(test.data.read("test")) == 2


def test_the_command_line_and_a_tar_archive(tmp_path, capsys):
    sgml = _write_sgml(tmp_path / "reuters21578")
    archive = tmp_path / "reuters21578.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(sgml.iterdir()):
            tar.add(path, arcname=path.name)
    assert cli.main(["convert", "reuters-sgml", str(sgml), str(tmp_path / "from_folder")]) == 0
    assert capsys.readouterr().out == f"{tmp_path / 'from_folder'}\n"
    assert cli.main(["convert", "reuters-sgml", str(archive), str(tmp_path / "from_tar")]) == 0
    for name in ("train.jsonl", "test.jsonl", "labels.txt"):
        assert (tmp_path / "from_tar" / name).read_bytes() == (tmp_path / "from_folder" / name).read_bytes()


@pytest.mark.parametrize(
    "text, line, message",
    [
        (
            HEADER + '<REUTERS TOPICS="YES" LEWISSPLIT="TRAIN" NEWID="1">\n<TOPICS><D>a</D></TOPICS>\n',
            2,
            "never closed",
        ),
        (
            HEADER
            + '<REUTERS TOPICS="YES" LEWISSPLIT="TRAIN" NEWID="1">\n\n<REUTERS TOPICS="YES" LEWISSPLIT="TRAIN" NEWID="2">',
            2,
            r"not closed before the next one \(line 4\)",
        ),
        (HEADER + '\n<REUTERS TOPICS="YES" LEWISSPLIT="TRAIN">\n</REUTERS>', 3, "needs a numeric NEWID; got none"),
        (HEADER + '<REUTERS TOPICS="YES" LEWISSPLIT="DEV" NEWID="4">\n</REUTERS>', 2, "LEWISSPLIT must be one of"),
        (
            HEADER + '<REUTERS TOPICS="YES" LEWISSPLIT="TEST" NEWID="4">\n\n<TOPICS><D>a</D>\n</REUTERS>',
            4,
            "<TOPICS> is never closed",
        ),
        (HEADER + "</REUTERS>\n", 2, "without a <REUTERS> before it"),
    ],
)
def test_a_malformed_file_names_its_file_and_line(tmp_path, text, line, message):
    folder = _write_sgml(tmp_path / "sgml", files=(FILE_0, text))
    with pytest.raises(DataError, match=message) as raised:
        convert_reuters_sgml(folder, tmp_path / "out")
    assert (raised.value.path, raised.value.line) == (str(folder / "reut2-001.sgm"), line)
    assert str(raised.value).startswith(f"{folder / 'reut2-001.sgm'}:{line}: ")
    assert not (tmp_path / "out").exists()


def test_errors_on_the_command_line_are_one_line(tmp_path, capsys):
    assert cli.main(["convert", "reuters-sgml", str(tmp_path), str(tmp_path / "out")]) == 2
    assert (
        capsys.readouterr().err
        == f"error: {tmp_path}: no reut2-*.sgm files here; unpack reuters21578.tar.gz into this folder\n"
    )
    assert cli.main(["convert", "reuters-sgml", str(tmp_path / "absent"), str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'absent'} does not exist\n"
    duplicated = _write_sgml(tmp_path / "twice", files=(FILE_0, FILE_0))
    assert cli.main(["convert", "reuters-sgml", str(duplicated), str(tmp_path / "out")]) == 2
    assert f"reut2-001.sgm:2: NEWID 1 again (first at {duplicated / 'reut2-000.sgm'}:2)" in capsys.readouterr().err


def test_a_file_without_documents_is_refused():
    with pytest.raises(DataError, match="no <REUTERS> documents"):
        list(read_reuters_sgml("empty.sgm", HEADER))
