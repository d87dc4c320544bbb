"""The CLI's tables: in a pipe kubectl-style plain columns, on a narrow terminal nothing cut.

A cluster with long names, an https endpoint and long event messages is recorded in a state home;
``list``, ``show``, ``events`` and ``bundle list`` run with stdout a pipe (in process) and on a
pseudo-terminal 60 columns wide (a real ``koral-play`` process), and every value must be whole.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from koral_ansible.bundle.registry import BundleRecord
from koral_ansible.cli import root
from koral_ansible.cli.age import age, human_duration
from koral_ansible.cli.common import run_cli
from koral_ansible.cli.table import Column, columns_for, layout
from koral_ansible.operations.context import Env
from koral_ansible.spec import validate_spec
from koral_ansible.state import ClusterState, NodeRecord
from tests.versions import DEFAULT

NAME = "production-cluster-long-name-01"  # 31 of the 32 characters a name may have
IP = "10.200.123.254"
ENDPOINT = f"https://{IP}:6443"
MESSAGE = (
    "created 4 nodes on network koral-production-cluster-long-name-01 in zone local, port forwards "
    "2222..2225 to the nodes, firewall open for 10.0.0.0/8 and an API load balancer on "
    f"{IP}:6443 (see {ENDPOINT}/healthz)"
)
NODES = [f"{NAME}-control-0", f"{NAME}-node-1", f"{NAME}-node-2"]
PROVIDER_ID = "0f6b3c2e-8d7a-4b1e-9a55-3c1d2e4f5a6b"
CHECKSUM = "e1541bff05576fbfa2fff9f8e1e0b446b83d1c65bca95b6c2e39e412a54d2d71"


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "home"
    monkeypatch.setenv("KORAL_HOME", str(h))
    env = Env.open(str(h))
    spec = validate_spec(
        {"name": NAME, "size": 2, "description": "the payments team's production cluster, do not touch"}
    )
    env.store.add_cluster(spec)
    env.store.set_state(NAME, ClusterState.RUNNING)
    env.store.set_endpoint(NAME, {"public_ip": IP, "api_port": 6443, "extra": {"network": f"koral-{NAME}"}})
    for i, node in enumerate(NODES):
        env.store.upsert_node(
            NAME,
            NodeRecord(
                name=node,
                role="control" if i == 0 else "worker",
                idx=i,
                private_ip=f"10.200.123.{10 + i}",
                ssh_host=IP,
                ssh_port=2222 + i,
                state="Running",
                provider_id=PROVIDER_ID if i == 0 else "",
            ),
        )
    env.store.event(NAME, "create", "provision", "Completed", MESSAGE)
    env.store.event(NAME, "create", "kubeadm", "Failed", "short\nsecond line")
    (h / "bundles.json").write_text(
        json.dumps(
            {
                "bundles": [
                    BundleRecord(
                        name="kubernetes-1.31.4-amd64-with-a-long-build-name",
                        kubernetes_version="1.31.4",
                        arch="amd64",
                        directory=str(h / "bundles" / "kubernetes-1.31.4-amd64-with-a-long-build-name"),
                        iso="",
                        checksum=CHECKSUM,
                        recorded="2026-12-01T20:00:00+00:00",
                    ).__dict__
                ]
            }
        )
    )
    return h


def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code = run_cli(root, args)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "\x1b[" not in out, "no colour in a pipe"
    assert not set(out) & set("│┃─━┏┓┗┛╭╮╰╯…"), "no box drawing, no ellipsis in a pipe"
    return out


def columns_of(lines: list[str]) -> list[int]:
    """The start offset of every header (headers are separated by at least 3 spaces)."""
    return [m.start() for m in re.finditer(r"(?:^|(?<=   ))\S", lines[0])]


def assert_aligned(lines: list[str], texts: int = 0) -> list[list[str]]:
    """Every row has a value starting at every header's offset, preceded by >= 3 spaces.

    Returns the cells (the last ``texts`` columns being free text, taken whole)."""
    starts = columns_of(lines)
    rows = []
    for line in lines:
        cells = []
        for i, start in enumerate(starts):
            assert line[start] != " " and (start == 0 or line[start - 3 : start] == "   "), (line, start)
            end = starts[i + 1] if i + 1 < len(starts) else len(line)
            cells.append(line[start:end].strip())
        rows.append(cells)
    assert all(len(r) == len(starts) for r in rows)
    return rows


def test_list_in_a_pipe_is_plain_aligned_and_whole(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = cli(["list"], capsys).splitlines()
    rows = assert_aligned(lines)
    assert rows[0] == ["NAME", "STATE", "PROVIDER", "VERSION", "CONTROL", "SIZE", "ENDPOINT", "AGE"]
    assert rows[1][:7] == [NAME, "Running", "local", DEFAULT, "1", "2", ENDPOINT]
    assert re.fullmatch(r"\d+s", rows[1][7])
    assert lines[1].startswith(NAME + "   Running")  # the widest cell is followed by exactly 3 spaces


def test_list_wide_adds_zone_network_cidrs_description(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = cli(["list", "-o", "wide"], capsys).splitlines()
    rows = assert_aligned(lines)
    assert rows[0] == [
        "NAME", "STATE", "PROVIDER", "VERSION", "CONTROL", "SIZE", "ENDPOINT", "AGE",
        "ZONE", "NETWORK", "CNI", "POD CIDR", "SERVICE CIDR", "CREATED", "DESCRIPTION",
    ]  # fmt: skip
    assert rows[1][8:14] == ["local", f"koral-{NAME}", "weave", "10.244.0.0/16", "10.96.0.0/12", rows[1][13]]
    assert datetime.fromisoformat(rows[1][13]).tzinfo is not None
    assert lines[1].endswith("the payments team's production cluster, do not touch")


def test_json_and_yaml_unchanged(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = json.loads(cli(["list", "-o", "json"], capsys))
    assert list(data[0]) == [
        "name", "state", "provider", "zone", "version", "control_nodes", "size", "endpoint", "created"
    ]  # fmt: skip
    assert data[0]["endpoint"] == ENDPOINT
    shown = json.loads(cli(["show", NAME, "-o", "json"], capsys))
    assert list(shown["nodes"][0]) == ["name", "role", "state", "ip", "ssh"]
    events = json.loads(cli(["events", NAME, "-o", "json"], capsys))
    assert events[0] == {**events[0], "message": MESSAGE} and "age" not in events[0]
    bundles = json.loads(cli(["bundle", "list", "-o", "json"], capsys))
    assert bundles[0]["checksum"] == CHECKSUM


def test_show_fields_and_nodes_whole(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = cli(["show", NAME], capsys)
    fields_part, nodes_part = out.split("\n\n")
    fields = dict(line.split(None, 1) if " " in line else (line, "") for line in fields_part.splitlines())
    assert fields["name"] == NAME and fields["endpoint"] == ENDPOINT and fields["public_ip"] == IP
    assert fields["allowed_cidrs"] == "0.0.0.0/0" and fields["ha"] == "false"
    assert fields["network"] == f"koral-{NAME}"
    assert fields["description"] == "the payments team's production cluster, do not touch"
    rows = assert_aligned(nodes_part.splitlines())
    assert rows[0] == ["NAME", "ROLE", "STATE", "IP", "SSH"]
    assert [r[0] for r in rows[1:]] == NODES and rows[1][4] == f"{IP}:2222"
    wide = cli(["show", NAME, "-o", "wide"], capsys).split("\n\n")[1].splitlines()
    rows = assert_aligned(wide)
    assert rows[0][5:] == ["INDEX", "PROVIDER ID"]
    assert rows[1][5:] == ["0", PROVIDER_ID] and rows[2][5:] == ["1", "<none>"]


def test_events_message_last_and_unwrapped(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = cli(["events", NAME], capsys).splitlines()
    assert len(lines) == 3, "one line per event: a message with a newline stays on its line"
    rows = assert_aligned(lines)
    assert rows[0] == ["TIME", "OPERATION", "PHASE", "RESULT", "MESSAGE"]
    assert rows[1][1:] == ["create", "provision", "Completed", MESSAGE]
    assert rows[2][4] == "short second line"
    datetime.fromisoformat(rows[1][0])  # the whole timestamp
    wide = assert_aligned(cli(["events", NAME, "-o", "wide"], capsys).splitlines())
    assert wide[0] == ["TIME", "AGE", "OPERATION", "PHASE", "RESULT", "MESSAGE"] and wide[1][5] == MESSAGE


def test_bundle_list_whole_paths_and_wide_checksum(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = assert_aligned(cli(["bundle", "list"], capsys).splitlines())
    assert rows[0] == ["NAME", "VERSION", "ARCH", "ISO", "DIRECTORY"]
    assert rows[1] == [
        "kubernetes-1.31.4-amd64-with-a-long-build-name",
        "1.31.4",
        "amd64",
        "<none>",
        str(home / "bundles" / "kubernetes-1.31.4-amd64-with-a-long-build-name"),
    ]
    rows = assert_aligned(cli(["bundle", "list", "-o", "wide"], capsys).splitlines())
    assert rows[0][5:] == ["CHECKSUM", "RECORDED"] and rows[1][5:] == [CHECKSUM, "2026-12-01T20:00:00+00:00"]


def test_empty_list_prints_nothing_on_stdout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KORAL_HOME", str(tmp_path / "empty"))
    assert run_cli(root, ["list"]) == 0
    out, err = capsys.readouterr()
    assert out == "" and err.strip() == "No clusters found."


def _on_terminal(args: list[str], home: Path, columns: int) -> str:
    """Run koral-play with stdout (and stdin) on a pseudo-terminal ``columns`` wide."""
    env = {**os.environ, "KORAL_HOME": str(home), "COLUMNS": str(columns), "LINES": "40", "TERM": "xterm"}
    env.pop("NO_COLOR", None)
    main, sub = pty.openpty()
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "koral-play"), *args],
        stdin=sub,
        stdout=sub,
        stderr=subprocess.PIPE,
        env=env,
    )
    os.close(sub)
    chunks = []
    while True:
        ready, _, _ = select.select([main], [], [], 30)
        if not ready:
            break
        try:
            data = os.read(main, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(main)
    assert proc.wait(30) == 0, proc.stderr.read() if proc.stderr else ""
    return b"".join(chunks).decode().replace("\r\n", "\n")


WHOLE = {
    ("list",): [NAME, ENDPOINT, DEFAULT],
    ("list", "-o", "wide"): [NAME, ENDPOINT, f"koral-{NAME}", "10.244.0.0/16", "10.96.0.0/12"],
    ("show", NAME, "-o", "wide"): [NAME, ENDPOINT, *NODES, f"{IP}:2222", "10.200.123.10", PROVIDER_ID],
    ("events", NAME): [],
    ("bundle", "list"): ["kubernetes-1.31.4-amd64-with-a-long-build-name", "bundles/kubernetes-1.31.4-amd64"],
}


@pytest.mark.parametrize("columns", [60, 200])
def test_narrow_terminal_never_cuts_values(home: Path, columns: int) -> None:
    for args, values in WHOLE.items():
        raw = _on_terminal(list(args), home, columns)
        assert "\x1b[1m" in raw, "bold headers on a terminal"
        text = re.sub(r"\x1b\[[0-9;]*m", "", raw)
        assert "…" not in text, args
        for value in values:
            assert value in text, (args, value, text)
        if args[0] == "list":
            assert all(datetime.fromisoformat(t) for t in re.findall(r"\b2026-\S+", text))
        if args[0] != "events":
            continue
        lines = text.splitlines()
        times = [line.split()[0] for line in lines[1:] if not line.startswith(" ")]
        assert len(times) == 2 and all(datetime.fromisoformat(t) for t in times)
        message = " ".join(text.split("Completed", 1)[1].split("\n2026")[0].split())
        assert message == MESSAGE, "the message wraps between words only, nothing lost"
        if columns == 200:
            assert len(lines) == 4, "wrapped once on a 200-column terminal"
            indent = lines[0].index("MESSAGE")
            assert lines[2][:indent] == " " * indent and lines[2][indent] != " "
        else:
            assert len(lines) == 3, "too narrow to wrap: the line runs on, like kubectl"


def test_layout_wraps_only_free_text_between_words() -> None:
    rows = [{"id": "x" * 40, "msg": "alpha beta gamma " + "y" * 50}]
    lines = layout(rows, [Column("id"), Column("msg", text=True)], width=80)
    assert lines[0] == "ID" + " " * 41 + "MSG"
    assert lines[1] == "x" * 40 + "   alpha beta gamma"
    assert lines[2] == " " * 43 + "y" * 50, "a word longer than the space left is never broken"
    with pytest.raises(ValueError, match="last column"):
        columns_for([Column("msg", text=True), Column("id")], wide=False)


def test_kubectl_tabwriter_min_width_and_none() -> None:
    lines = layout([{"a": "1", "b": None, "c": ""}], [Column("a"), Column("b"), Column("c")])
    assert lines == ["A     B        C", "1     <none>   <none>"]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(-5, "<invalid>"), (-1, "0s"), (59, "59s"), (119, "119s"), (120, "2m"), (200, "3m20s"), (600, "10m"),
     (179 * 60, "179m"), (3 * 3600, "3h"), (3 * 3600 + 60, "3h1m"), (8 * 3600, "8h"), (47 * 3600, "47h"),
     (48 * 3600, "2d"), (50 * 3600, "2d2h"), (8 * 86400, "8d"), (730 * 86400, "2y"), (731 * 86400, "2y1d"),
     (3000 * 86400, "8y")],
)  # fmt: skip
def test_human_duration_is_apimachinerys(seconds: int, text: str) -> None:
    assert human_duration(seconds) == text


def test_age_of_state_timestamps() -> None:
    now = datetime(2026, 12, 1, 20, 0, tzinfo=UTC)
    assert age((now - timedelta(minutes=5)).isoformat(timespec="seconds"), now) == "5m"
    assert age("", now) == "" and age("garbage", now) == "<invalid>"
