"""The funcs target syntax (funccount's), and that nothing typed reaches C text."""

from __future__ import annotations

import hashlib
import re
import sys
import types
from unittest import mock

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ktop.model.funcspec import KERNEL, TRACEPOINT, USDT, USER, FuncSpec, SpecError, check_spec, parse_spec
from ktop.probes import funcs as F
from ktop.probes.funcs import attach as FA
from ktop.probes.funcs import sites as FR
from ktop.resources import bpf_source


# -- every form ------------------------------------------------------------------
@pytest.mark.parametrize("text, kind, library, pattern", [
    ("vfs_read", KERNEL, "", "vfs_read"),
    ("vfs_*", KERNEL, "", "vfs_*"),
    ("k:vfs_read", KERNEL, "", "vfs_read"),
    ("p::vfs_read", KERNEL, "", "vfs_read"),
    ("t:sched:sched_process_exec", TRACEPOINT, "", "sched:sched_process_exec"),
    ("t:sched:*", TRACEPOINT, "", "sched:*"),
    ("t:*:sys_enter_open*", TRACEPOINT, "", "*:sys_enter_open*"),
    ("c:malloc", USER, "c", "malloc"),
    ("c:*alloc", USER, "c", "*alloc"),
    ("pthread:pthread_create", USER, "pthread", "pthread_create"),
    ("libc.so.6:free", USER, "libc.so.6", "free"),
    ("libstdc++:_Znwm", USER, "libstdc++", "_Znwm"),
    ("go:os.*", USER, "go", "os.*"),
    ("p:c:malloc", USER, "c", "malloc"),
    ("/usr/bin/bash:readline", USER, "/usr/bin/bash", "readline"),
    ("./test:read*", USER, "./test", "read*"),
    ("../bin/x:main", USER, "../bin/x", "main"),
    ("/opt/a:b/bin:f", USER, "/opt/a:b/bin", "f"),  # a colon inside a path: split at the last one
    ("u:python3:gc__start", USDT, "python3", "gc__start"),
    ("u:/usr/bin/python3.11:function__*", USDT, "/usr/bin/python3.11", "function__*"),
    ("u:c:setjmp", USDT, "c", "setjmp"),
    ("  c:malloc  ", USER, "c", "malloc"),  # surrounding spaces are dropped
    ("malloc@@GLIBC_2.2.5", KERNEL, "", "malloc@@GLIBC_2.2.5"),
])
def test_forms(text, kind, library, pattern):
    s = parse_spec(text)
    assert (s.kind, s.library, s.pattern) == (kind, library, pattern)
    assert s.text == text.strip()
    assert check_spec(text) is None


@pytest.mark.parametrize("text, message", [
    ("", "empty spec"),
    ("   ", "empty spec"),
    ("c:mal loc", "space"),
    ("c:malloc\n", None),  # trailing whitespace is stripped, so this one parses
    ("c:mal\nloc", "control character"),
    ("c:mal\x00loc", "control character"),
    ("c:mal\x1b[31mloc", "control character"),
    ("c:mal\u200bloc", "invisible"),
    ("t:sched", "t:CATEGORY:EVENT"),
    ("t:sched:a:b", "t:CATEGORY:EVENT"),
    ("t::sched_switch", "missing tracepoint category"),
    ("t:sched:", "missing tracepoint event"),
    ("t:sch(ed:x", "may not contain '('"),
    ("u:python3", "u:LIBRARY:PROBE"),
    ("u::probe", "u:LIBRARY:PROBE"),
    ("u:python3:gc-start", "may not contain '-'"),
    ("k:", "missing function name"),
    ("k:a:b", "no further ':'"),
    ("p:malloc", "p::FUNCTION"),
    ("a:b:c", "too many ':'"),
    ("c:", "missing function name"),
    (":malloc", "missing library"),
    ("/usr/bin/bash", "needs a function"),
    ("/usr/bin/bash:", "needs a function"),
    ("c:ma'lloc", "may not contain \"'\""),
    ("c:ma\"lloc", "may not contain '\"'"),
    ("c:a{b}", "may not contain '{'"),
    ("c:a/*b", "may not contain '/'"),
    ("c:a%sb", "may not contain '%'"),
    ("c:a;b", "may not contain ';'"),
    ("li b:f", "space"),
    ("l(b:f", "may not contain '('"),
    ("c:" + "a" * 600, "longer than 512"),
    ("x" * 5000, "longer than 4096"),
])
def test_malformed(text, message):
    if message is None:
        parse_spec(text)
        return
    with pytest.raises(SpecError, match=re.escape(message)):
        parse_spec(text)
    err = check_spec(text)
    assert err and "\n" not in err


def test_regex_escapes_everything_but_the_wildcard():
    assert parse_spec("c:a.b*").regex() == r"^a\.b.*$"
    assert re.match(parse_spec("go:os.*").regex(), "os.Open")
    assert not re.match(parse_spec("go:os.*").regex(), "osXOpen")
    assert parse_spec("t:sched:*").regex() == "^sched:.*$"


def test_describe():
    assert parse_spec("c:*alloc").describe() == "user functions *alloc in library c"
    assert parse_spec("/bin/x:f").describe() == "user function f in binary /bin/x"
    assert parse_spec("t:sched:sched_switch").describe() == "tracepoint sched:sched_switch"


def test_pool_sizes_and_function_names():
    assert [F.pool_size(n) for n in (0, 1, 10, 11, 100, 101, 999, 1000, 1001, 10000)] == \
        [10, 10, 10, 20, 100, 200, 1000, 1000, 2000, 10000]
    with pytest.raises(ValueError):
        F.pool_size(10001)
    assert F.fn_name(0) == b"trace_0000" and F.fn_name(1234) == b"trace_1234"
    with pytest.raises(ValueError):
        F.fn_name(10000)


def test_every_pooled_function_exists_in_the_c_source():
    """trace_ABCD names and the slot they count come from macros over digit tokens."""
    src = bpf_source("funcs").read_text()
    assert "int trace_##a##b##c##d(void *ctx) { return hit(a * 1000 + b * 100 + c * 10 + d); }" in src
    guards = [int(g) for g in re.findall(r"#if POOL_SIZE > (\d+)", src)][1:]  # the first: #error
    assert guards == list(range(0, 100, 10)) + list(range(100, 1000, 100)) + list(range(1000, 10000, 1000))


def test_compile_flags_are_integers_only():
    assert F.compile_flags(3) == ["-DPOOL_SIZE=10", "-DMAX_ENTRIES=10240"]
    assert F.compile_flags(150, max_entries=99) == ["-DPOOL_SIZE=200", "-DMAX_ENTRIES=99"]
    from ktop.probes.base import ProbeOptions

    flags = F.FuncsProbe(ProbeOptions(pid=42)).cflags()
    assert "-DFILTER_TGID=42" in flags and F.FuncsProbe().pid_cflags() == []


# -- nothing typed reaches the C text -----------------------------------------------
HOSTILE = ["'", '"', "{", "}", "*/", "/*", "\n", "\r", "%", "%s", "%n", "\x00", "\\", ";", "#define X",
           ")", "(", "`", "$(", "\t", " ", ":", "::", "t:", "u:", "k:", "p:", "c:", "/", "./", "*",
           "\u202e", "\x1b[31m", "é", "malloc", "sched", "__x64_sys_read"]

hostile_text = st.one_of(
    st.from_regex(r"[A-Za-z0-9_.$@*]{1,40}", fullmatch=True),
    st.from_regex(r"(c|pthread|/tmp/x|\./y):[A-Za-z0-9_.*]{1,20}", fullmatch=True),
    st.text(max_size=200),
    st.lists(st.sampled_from(HOSTILE) | st.text(max_size=8), max_size=30).map("".join),
    st.tuples(st.sampled_from(HOSTILE + ["a"]), st.integers(1, 3000)).map(lambda t: t[0] * t[1]),
)


class _FakeBPF:
    """Stands in for bcc.BPF: records what it was given instead of compiling."""

    made: list = []

    def __init__(self, src_file=b"", hdr_file=b"", text=None, cflags=(), usdt_contexts=(), **kw):
        _FakeBPF.made.append({"src_file": src_file, "text": text, "cflags": list(cflags),
                              "usdt_contexts": list(usdt_contexts), "kw": kw})
        self.attached = []
        self.uprobe_fds = {}

    @staticmethod
    def get_probe_limit():
        return 1000

    def attach_kprobe(self, event=b"", fn_name=b"", **kw):
        self.attached.append(("kprobe", event, fn_name))

    def attach_tracepoint(self, tp=b"", fn_name=b"", **kw):
        self.attached.append(("tracepoint", tp, fn_name))

    def cleanup(self):
        pass


def _fake_resolution(spec: FuncSpec, n: int) -> F.Resolution:
    # Site names carry the user's text: they may only ever become attach arguments.
    sites = tuple(F.Site(f"{spec.pattern}{i}") for i in range(n))
    return F.Resolution(spec, F.STATUS_OK, "", "", sites, (), n, 1000)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=hostile_text, n=st.integers(1, 30), kind=st.sampled_from(["", "k:", "t:x:", "c:"]))
def test_no_input_reaches_the_c_text(text, n, kind):
    """Whatever is typed: the parser answers a FuncSpec or a SpecError (never
    crashes), and a target compiles the fixed C file with integer flags that
    are the same as for any other spec with as many sites."""
    source = bpf_source("funcs")
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    typed = kind + text
    try:
        spec = parse_spec(typed)
    except SpecError as exc:
        assert str(exc) and "\n" not in str(exc)
        event("rejected")
        return
    event(f"parsed: {spec.kind}")
    text = spec.text
    if spec.kind in (USER, USDT):
        text = "k:" + spec.pattern  # uprobes need real files: the path is the same
    probe = F.FuncsProbe(F.ProbeOptions(extra={"funcs": []}))
    _FakeBPF.made = []
    fake_bcc = types.SimpleNamespace(BPF=_FakeBPF)
    with mock.patch.dict(sys.modules, {"bcc": fake_bcc}), \
            mock.patch.object(FA, "resolve", lambda s, cap: _fake_resolution(s, n)):
        req = {"probe": "funcs", "source": probe.source(), "cflags": probe.cflags(), "spec": text, "cap": 1000,
               "pid": None, "max_entries": F.MAX_ENTRIES, "quota_left": 1000}
        b, extra = F.helper_build(req)
    assert extra["names"], extra
    (made,) = _FakeBPF.made
    assert made["text"] is None and made["usdt_contexts"] == []
    assert made["src_file"] == str(source).encode()
    reference = probe.cflags() + F.compile_flags(n)
    assert made["cflags"] == reference
    for flag in made["cflags"]:
        assert re.fullmatch(r"-D[A-Z_]+=\d+|-I/\S+|-W[a-z-]+", flag), flag
    assert all(fn == F.fn_name(i) for i, (_k, _n, fn) in enumerate(b.attached))
    assert hashlib.sha256(source.read_bytes()).hexdigest() == digest


def test_the_c_source_is_never_formatted():
    """The probe never reads its C file to build text: BPF gets src_file, never text=."""
    import inspect

    src = inspect.getsource(F)
    assert "BPF(text" not in src and "text=" not in src.replace("text=text_or_spec", "")
    assert ".format(" not in src.split("class FuncsProbe")[1].split("def collect")[0]


def _kernel_resolution(tmp_path, monkeypatch, kallsyms: set, bcc_ok: set, ftrace: str | None, text: str):
    if ftrace is not None:
        (tmp_path / "available_filter_functions").write_text(ftrace)
    bcc = types.ModuleType("bcc")
    bcc.BPF = types.SimpleNamespace(get_kprobe_functions=lambda rx: {n.encode() for n in bcc_ok
                                                                     if re.match(rx.decode(), n)})
    monkeypatch.setitem(sys.modules, "bcc", bcc)
    monkeypatch.setattr(FR.features, "kprobes_available", lambda: True)
    monkeypatch.setattr(FR.features, "tracefs", lambda: tmp_path)
    monkeypatch.setattr(FR, "_kallsyms_text", lambda rx: {n for n in kallsyms if re.match(rx, n)})
    return F.resolve(text, cap=10)


def test_kernel_wildcard_takes_only_ftrace_functions(tmp_path, monkeypatch):
    """Like bpftrace: a match missing from available_filter_functions is skipped (the kernel refuses it)."""
    names = {"vfs_read", "vfs_write", "vfs_notrace", "vfs_blacklisted"}
    r = _kernel_resolution(tmp_path, monkeypatch, names, names - {"vfs_blacklisted"},
                           "vfs_read\nvfs_write [ext4]\nvfs_blacklisted\n", "vfs_*")
    assert [s.name for s in r.sites] == ["vfs_read", "vfs_write"]
    assert r.matched == 2
    assert sorted(n for n, _ in r.skipped) == ["vfs_blacklisted", "vfs_notrace"]


def test_kernel_resolution_without_a_readable_ftrace_list_keeps_bcc_candidates(tmp_path, monkeypatch):
    names = {"vfs_read", "vfs_notrace"}
    r = _kernel_resolution(tmp_path, monkeypatch, names, names, None, "vfs_*")
    assert [s.name for s in r.sites] == ["vfs_notrace", "vfs_read"] and not r.skipped


def test_kernel_name_missing_from_ftrace_list_is_an_error_that_says_why(tmp_path, monkeypatch):
    r = _kernel_resolution(tmp_path, monkeypatch, {"vfs_notrace"}, {"vfs_notrace"}, "vfs_read\n", "vfs_notrace")
    assert r.status == F.STATUS_ERROR and "cannot be traced" in r.detail and not r.sites
