"""JUnit XML reports: structure, attributes, failure evidence and XML-safe text."""

from __future__ import annotations

import os
import resource
import signal
import socket
import stat
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path

import pytest

from pipeplex.errors import PipeplexError
from pipeplex.report.junit import CaseResult, classname, write_junit, xml_safe

FAILURE = (
    "s.toml:12: expect '^ready$' in server: not seen within 2.0 s\n"
    "last output of server:\n"
    "    booting"
)
RESULTS = [
    CaseResult("chat.toml", "chat", 1.25),
    CaseResult("chat.toml", "chat-fails", 2.5, failure=FAILURE, output="out line\n"),
    CaseResult("boot.toml", "boot", 0.0004, error="cannot load boot.toml\ndetails"),
]


@pytest.fixture
def report(tmp_path: Path) -> ET.Element:
    path = tmp_path / "report.xml"
    write_junit(path, RESULTS)
    return ET.parse(path).getroot()


def test_one_testsuite_per_suite_in_first_seen_order(report: ET.Element) -> None:
    """The root is <testsuites> with one <testsuite> per suite, in the order first seen."""
    assert report.tag == "testsuites"
    assert [s.get("name") for s in report.findall("testsuite")] == ["chat.toml", "boot.toml"]


def test_the_root_carries_the_totals(report: ET.Element) -> None:
    """As JUnit's schema allows on <testsuites>: some CI tools read only the root's."""
    assert dict(report.attrib) == {"name": "pipeplex test", "tests": "3", "failures": "1",
                                   "errors": "1", "time": "3.750"}


@pytest.mark.parametrize(
    ("index", "counts"),
    [
        (0, {"tests": "2", "failures": "1", "errors": "0", "skipped": "0", "time": "3.750"}),
        (1, {"tests": "1", "failures": "0", "errors": "1", "skipped": "0", "time": "0.000"}),
    ],
)
def test_testsuite_attributes(report: ET.Element, index: int, counts: dict[str, str]) -> None:
    """Each suite counts tests, failures and errors, sums time, and has timestamp/hostname."""
    suite = report.findall("testsuite")[index]
    assert {key: suite.get(key) for key in counts} == counts
    stamp = suite.get("timestamp")
    assert stamp is not None
    datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S")  # a local time, as written
    assert suite.get("hostname") == socket.gethostname()


def test_a_suites_timestamp_is_when_it_began(tmp_path: Path) -> None:
    """JUnit readers take a suite's timestamp as its start: each suite's own (the earliest
    of its cases), not the one time the report was written."""
    path = tmp_path / "report.xml"
    began = datetime(2026, 3, 4, 5, 6, 7).timestamp()
    write_junit(path, [CaseResult("a.toml", "a", 1.0, began_at=began + 60),
                       CaseResult("a.toml", "a2", 1.0, began_at=began),
                       CaseResult("b.toml", "b", 1.0, began_at=began + 3600)])
    stamps = [s.get("timestamp") for s in ET.parse(path).getroot().findall("testsuite")]
    assert stamps == ["2026-03-04T05:06:07", "2026-03-04T06:06:07"]


def test_testcase_attributes(report: ET.Element) -> None:
    """Each case has its file as a dotted classname, the file, its name, and its time with
    3 decimals."""
    cases = [(c.get("classname"), c.get("file"), c.get("name"), c.get("time"))
             for c in report.iter("testcase")]
    assert cases == [
        ("chat", "chat.toml", "chat", "1.250"),
        ("chat", "chat.toml", "chat-fails", "2.500"),
        ("boot", "boot.toml", "boot", "0.000"),
    ]


@pytest.mark.parametrize(("suite", "name"), [
    ("suite/b_fail.toml", "suite.b_fail"), ("./a/b/c.TOML", "a.b.c"),
    ("/tmp/x/chat.toml", "tmp.x.chat"), ("../up/s.toml", "up.s"), ("plain", "plain")])
def test_a_classname_is_the_file_dotted_as_jenkins_reads_it(suite: str, name: str) -> None:
    """Jenkins takes what follows the last dot for the class: with the .toml kept, every
    scenario was in a class named toml."""
    assert classname(suite) == name


def test_passing_case_has_no_children(report: ET.Element) -> None:
    """A passing case without output is an empty <testcase>."""
    first = next(report.iter("testcase"))
    assert list(first) == []


@pytest.mark.parametrize(
    ("case", "kind", "text"),
    [(1, "failure", FAILURE), (2, "error", "cannot load boot.toml\ndetails")],
)
def test_problem_message_is_the_first_line_and_body_the_whole_text(
    report: ET.Element, case: int, kind: str, text: str
) -> None:
    """<failure>/<error> carry the first line as message and the full text as body."""
    element = list(report.iter("testcase"))[case]
    (problem,) = list(element.iter(kind))
    assert problem.get("message") == text.splitlines()[0]
    assert problem.get("type") == f"pipeplex.{kind}"
    assert problem.text == text


def test_output_goes_to_system_out(report: ET.Element) -> None:
    """A case's output is written as <system-out>."""
    element = list(report.iter("testcase"))[1]
    system_out = element.find("system-out")
    assert system_out is not None
    assert system_out.text == "out line\n"


def test_empty_failure_text_still_has_a_message(tmp_path: Path) -> None:
    """An empty failure text is reported with a non-empty message."""
    path = tmp_path / "r.xml"
    write_junit(path, [CaseResult("s", "n", 1.0, failure="")])
    failure = ET.parse(path).getroot().find("testsuite/testcase/failure")
    assert failure is not None
    assert failure.get("message") == "failure"


def test_no_results_writes_an_empty_testsuites(tmp_path: Path) -> None:
    """With no results, the file is still a valid, empty <testsuites>."""
    path = tmp_path / "r.xml"
    write_junit(path, [])
    root = ET.parse(path).getroot()
    assert (root.tag, list(root)) == ("testsuites", [])


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
        ("nul\x00bell\x07", "nul\\x00bell\\x07"),
        ("vt\x0bff\x0c", "vt\\x0bff\\x0c"),
        ("bad\ufffe\uffff", "bad\ufffd\ufffd"),
        ("tab\tnl\ncr\r", "tab\tnl\ncr\r"),
        ("plain é ✓ 😀", "plain é ✓ 😀"),
    ],
)
def test_xml_safe(raw: str, safe: str) -> None:
    """Characters XML 1.0 forbids become visible escapes; allowed ones stay."""
    assert xml_safe(raw) == safe


@pytest.mark.parametrize("bad", ["\x1b", "\x00", "\x07", "\x08", "\x1f", "\ufffe"])
def test_control_characters_in_failures_and_output_still_parse(
    tmp_path: Path, bad: str
) -> None:
    """A report whose failure, name and output contain control characters parses."""
    path = tmp_path / "r.xml"
    text = f"first{bad}line\nsecond{bad}line"
    write_junit(path, [CaseResult(f"suite{bad}", f"case{bad}", 1.0, failure=text,
                                  output=f"out{bad}put\n")])
    root = ET.parse(path).getroot()
    case = root.find("testsuite/testcase")
    assert case is not None
    failure = case.find("failure")
    system_out = case.find("system-out")
    assert failure is not None
    assert system_out is not None
    assert failure.get("message") == xml_safe(f"first{bad}line")
    assert failure.text == xml_safe(text)
    assert system_out.text == xml_safe(f"out{bad}put\n")
    assert case.get("name") == xml_safe(f"case{bad}")
    assert bad not in (failure.text or "") + (system_out.text or "")


def test_lone_surrogates_still_parse(tmp_path: Path) -> None:
    """A report naming a suite or error with a lone surrogate still parses."""
    path = tmp_path / "r.xml"
    write_junit(path, [CaseResult("\udcff.toml", "x", 1.0, error="cannot read \udcff.toml")])
    ET.parse(path)


def test_junitparser_reads_the_report(tmp_path: Path) -> None:
    """A third-party JUnit reader understands the report, control characters and all."""
    junitparser = pytest.importorskip("junitparser")
    path = tmp_path / "r.xml"
    results = [*RESULTS, CaseResult("ctl", "esc", 1.0, failure="a\x1b[1mb\x00", output="\x07")]
    write_junit(path, results)
    xml = junitparser.JUnitXml.fromfile(str(path))
    suites = list(xml)
    assert [s.name for s in suites] == ["chat.toml", "boot.toml", "ctl"]
    assert [(s.tests, s.failures, s.errors) for s in suites] == [(2, 1, 0), (1, 0, 1), (1, 1, 0)]
    failing = list(suites[0])[1]
    (problem,) = failing.result
    assert problem.message == FAILURE.splitlines()[0]
    assert problem.text == FAILURE


@pytest.mark.parametrize("target", ["victim.xml", "nowhere.xml"])
def test_a_link_in_the_reports_place_is_refused_never_followed(
        tmp_path: Path, target: str) -> None:
    """A link planted at the path neither overwrites the file it points to nor makes a
    file where a dangling one points; it is said, and stays as it was."""
    (tmp_path / "victim.xml").write_text("someone else's\n")
    path = tmp_path / "r.xml"
    path.symlink_to(tmp_path / target)
    with pytest.raises(PipeplexError, match=(
            f"^cannot write the JUnit report {path}: it is a symbolic link, which pipeplex "
            "does not follow; remove it, or give another file$")):
        write_junit(path, RESULTS)
    assert (tmp_path / "victim.xml").read_text() == "someone else's\n"
    assert not (tmp_path / "nowhere.xml").exists()
    assert path.is_symlink()
    assert sorted(os.listdir(tmp_path)) == ["r.xml", "victim.xml"]


def test_the_report_is_private_whatever_the_umask(tmp_path: Path) -> None:
    """Made 0600, as transcripts are; an earlier report (0644) is replaced by one that is."""
    new, earlier = tmp_path / "new.xml", tmp_path / "earlier.xml"
    earlier.write_text("an earlier report\n")
    earlier.chmod(0o644)
    umask = os.umask(0o022)
    try:
        write_junit(new, RESULTS)
        write_junit(earlier, RESULTS)
    finally:
        os.umask(umask)
    for path in (new, earlier):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert ET.parse(path).getroot().tag == "testsuites"


def test_a_report_that_cannot_be_written_leaves_the_earlier_one_whole(tmp_path: Path) -> None:
    """The report is written to a new file renamed into place: a write that fails (a full
    disk; here a file size limit) leaves the earlier report as it was, and nothing else."""
    path = tmp_path / "r.xml"
    path.write_text("the earlier report\n")
    limit = 4096

    def small_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    code = ("import sys\n"
            "from pipeplex.report.junit import CaseResult, write_junit\n"
            "try:\n"
            f"    write_junit(sys.argv[1], [CaseResult('s', 'n', 1.0, output='x' * {limit})])\n"
            "except OSError as exc:\n"
            "    sys.exit(exc.strerror)\n")
    result = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                            text=True, timeout=30, preexec_fn=small_files)
    assert (result.returncode, result.stderr) == (1, "File too large\n")
    assert path.read_text() == "the earlier report\n"
    assert os.listdir(tmp_path) == ["r.xml"]
