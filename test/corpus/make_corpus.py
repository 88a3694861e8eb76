#!/usr/bin/python3
"""Builds the scanner's labelled test corpus: test/corpus/{malicious,benign}/.

Run with Debian's interpreter: /usr/bin/python3 test/corpus/make_corpus.py
Nothing here is ever loaded by the tests; files are only written. Malicious payloads run
harmless commands (echo) if someone does load them.

Benign files use the real torch, numpy, scikit-learn and joblib when they are installed
(Debian: python3-torch python3-numpy python3-sklearn python3-joblib); otherwise stand-in
modules with the same global names are used, which produce the same opcode shapes.
ONNX files are built with python3-onnx and HDF5 files with python3-h5py. Keras and TensorFlow
are not packaged in Debian: Keras files are written in Keras' own layout (the HDF5 attributes,
the .keras zip) with h5py and zipfile, and TensorFlow graphs with a small protobuf encoder.
Entries may be folders (a SavedModel, an ONNX model with its external data): each top-level
entry of malicious/ and benign/ is one labelled model.
"""
import base64
import json
import io
import os
import marshal
import pickle
import shutil
import struct
import sys
import tarfile
import zipfile
from collections import OrderedDict

ROOT = os.path.dirname(os.path.abspath(__file__))
MAL = os.path.join(ROOT, "malicious")
BEN = os.path.join(ROOT, "benign")
for d in (MAL, BEN):
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)


def write(folder, name, data):
    path = os.path.join(folder, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
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
def zinfo(name, compress=zipfile.ZIP_STORED):
    """A member with a fixed time stamp, so that rebuilding the corpus gives the same bytes."""
    i = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
    i.compress_type = compress
    return i


def torch_zip(name, members, *, compress=zipfile.ZIP_STORED):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compress) as z:
        for n, data in members:
            z.writestr(zinfo(n, compress), data)
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
# The "encrypted" bit on plain data: zipfile refuses the member, PyTorch's reader ignores the bit.
z = bytearray(torch_zip("m", [("archive/data.pkl", evil)]))
z[z.find(b"PK\x03\x04") + 6] |= 0x01
z[z.find(b"PK\x01\x02") + 8] |= 0x01
write(MAL, "torch-zip-encrypted-bit-plain-data.pt", bytes(z))
# A member that really is opaque (encrypted bytes): nothing can be checked.
z = bytearray(torch_zip("m", [("archive/data.pkl", bytes((i * 73 + 41) % 256 for i in range(256)))]))
z[z.find(b"PK\x03\x04") + 6] |= 0x01
z[z.find(b"PK\x01\x02") + 8] |= 0x01
write(MAL, "zip-encrypted-member.pt", bytes(z))
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
    zz.writestr(zinfo("arr_0.npy"), npy("|O", (1,), evil))
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
# ---------------------------------------------------------------- zip64, nested archives, 7z
_limit = zipfile.ZIP64_LIMIT
zipfile.ZIP64_LIMIT = 16  # every size and offset written the zip64 way, as in a > 4 GiB checkpoint
write(MAL, "torch-zip64.pt", torch_zip("m", [("archive/data.pkl", evil), ("archive/version", b"3\n")]))
write(BEN, "torch-zip64-state.pt", torch_zip("m", [("archive/data.pkl", pickle.dumps({"w": [1.0]}, protocol=2)), ("archive/version", b"3\n")]))
zipfile.ZIP64_LIMIT = _limit
inner_zip = torch_zip("inner", [("archive/data.pkl", evil)], compress=zipfile.ZIP_DEFLATED)
write(MAL, "zip-inside-zip.zip", torch_zip("outer", [("checkpoints/model.pt", inner_zip)]))
write(MAL, "npz-inside-zip.zip", torch_zip("outer", [("arrays.npz", npz.getvalue())]))
# 7z: the scanner recognises the container but does not decode LZMA, so contents are unchecked.
write(MAL, "payload.7z", b"7z\xbc\xaf\x27\x1c\x00\x04" + bytes(range(64)))


# ---------------------------------------------------------------- Keras (HDF5 and .keras)
def keras_code(fn):
    """Keras 2 stores a Lambda's function as base64 of marshal.dumps(code); written, never run."""
    return base64.b64encode(marshal.dumps(fn.__code__)).decode()


EVIL_LAMBDA = lambda x: __import__("os").system("echo pwned") or x  # noqa: E731


def keras2_dense(name, units, activation):
    return {"class_name": "Dense", "config": {
        "name": name, "trainable": True, "dtype": "float32", "units": units, "activation": activation,
        "use_bias": True, "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
        "bias_initializer": {"class_name": "Zeros", "config": {}}, "kernel_regularizer": None,
        "bias_regularizer": None, "activity_regularizer": None, "kernel_constraint": None, "bias_constraint": None}}


def keras2_model(layers):
    return {"class_name": "Sequential", "config": {"name": "sequential", "layers": [
        {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 8], "dtype": "float32",
                                                 "sparse": False, "ragged": False, "name": "dense_input"}}] + layers},
        "keras_version": "2.13.1", "backend": "tensorflow"}


KERAS2_TRAINING = {"loss": "mse", "metrics": None, "weighted_metrics": None, "loss_weights": None,
                   "optimizer_config": {"class_name": "Adam", "config": {"name": "Adam", "learning_rate": 0.001}}}


def keras_h5(model, training=KERAS2_TRAINING):
    import h5py  # noqa: E402  (python3-h5py)
    b = io.BytesIO()
    with h5py.File(b, "w") as f:
        f.attrs["keras_version"] = "2.13.1"
        f.attrs["backend"] = "tensorflow"
        f.attrs["model_config"] = json.dumps(model)
        if training:
            f.attrs["training_config"] = json.dumps(training)
        g = f.create_group("model_weights")
        g.create_dataset("dense/dense/kernel:0", data=[[0.5] * 4] * 8, dtype="f4")
        g.create_dataset("dense/dense/bias:0", data=[0.0] * 4, dtype="f4")
    return b.getvalue()


write(BEN, "keras2-dense.h5", keras_h5(keras2_model([keras2_dense("dense", 4, "relu"), keras2_dense("dense_1", 1, "linear")])))
write(MAL, "keras2-lambda-bytecode.h5", keras_h5(keras2_model([keras2_dense("dense", 4, "relu"), {"class_name": "Lambda", "config": {
    "name": "lambda", "trainable": True, "dtype": "float32", "function": [keras_code(EVIL_LAMBDA), None, None],
    "function_type": "lambda", "module": "__main__", "output_shape": None, "output_shape_type": "raw",
    "output_shape_module": None, "arguments": {}}}])))


def k3(module, class_name, config, registered_name=None, **extra):
    return {"module": module, "class_name": class_name, "config": config, "registered_name": registered_name, **extra}


K3_DTYPE = k3("keras", "DTypePolicy", {"name": "float32"})


def k3_dense(name, units, activation="relu"):
    return k3("keras.layers", "Dense", {
        "name": name, "trainable": True, "dtype": K3_DTYPE, "units": units, "activation": activation,
        "use_bias": True, "kernel_initializer": k3("keras.initializers", "GlorotUniform", {"seed": None}),
        "bias_initializer": k3("keras.initializers", "Zeros", {}), "kernel_regularizer": None,
        "bias_regularizer": None, "kernel_constraint": None, "bias_constraint": None},
        build_config={"input_shape": [None, 8]})


def k3_model(layers):
    return k3("keras", "Sequential", {
        "name": "sequential", "trainable": True, "dtype": K3_DTYPE,
        "layers": [k3("keras.layers", "InputLayer", {"batch_shape": [None, 8], "dtype": "float32", "sparse": False, "name": "input_layer"})] + layers,
        "build_input_shape": [None, 8]},
        build_config={"input_shape": [None, 8]},
        compile_config={"optimizer": k3("keras.optimizers", "Adam", {"name": "adam", "learning_rate": 0.001}),
                        "loss": "mean_squared_error", "metrics": None, "run_eagerly": False, "jit_compile": False})


def keras_v3(model):
    import h5py  # noqa: E402
    w = io.BytesIO()
    with h5py.File(w, "w") as f:
        f.create_dataset("layers/dense/vars/0", data=[[0.5] * 4] * 8, dtype="f4")
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w") as z:
        z.writestr(zinfo("metadata.json"), json.dumps({"keras_version": "3.6.0", "date_saved": "2026-11-26@12:00:00"}))
        z.writestr(zinfo("config.json"), json.dumps(model))
        z.writestr(zinfo("model.weights.h5"), w.getvalue())
    return b.getvalue()


write(BEN, "keras3-dense.keras", keras_v3(k3_model([k3_dense("dense", 4), k3_dense("dense_1", 1, "linear")])))
write(MAL, "keras3-lambda-bytecode.keras", keras_v3(k3_model([k3("keras.layers", "Lambda", {
    "name": "lambda", "trainable": True, "dtype": K3_DTYPE, "arguments": {},
    "function": k3("builtins", "__lambda__", {"code": keras_code(EVIL_LAMBDA), "defaults": None, "closure": None})})])))
write(MAL, "keras3-activation-os-system.keras", keras_v3(k3_model([k3_dense("dense", 4, k3("os", "function", "system", "system"))])))
write(MAL, "keras3-builtins-exec-initializer.keras", keras_v3(k3_model([k3("keras.layers", "Dense", {
    "name": "dense", "units": 4, "kernel_initializer": k3("builtins", "function", "exec", "exec")})])))
write(MAL, "keras3-get-file.keras", keras_v3(k3_model([k3_dense("dense", 4, k3("keras.utils", "function", "get_file", "get_file"))])))
write(MAL, "keras3-enable-unsafe-deserialization.keras", keras_v3(k3_model([k3("keras.config", "function", "enable_unsafe_deserialization", "enable_unsafe_deserialization"), k3_dense("dense", 4)])))
torch_payload = base64.b64encode(torch_zip("m", [("archive/data.pkl", evil)])).decode()
write(MAL, "keras3-torch-module-wrapper.keras", keras_v3(k3_model([k3("keras.layers", "TorchModuleWrapper", {"name": "torch_module_wrapper", "module": torch_payload})])))


# ---------------------------------------------------------------- TensorFlow graphs (protobuf)
def pb_varint(n):
    out = b""
    while True:
        b7 = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b7 | 0x80])
        else:
            return out + bytes([b7])


def pb_len(no, payload):
    return pb_varint(no << 3 | 2) + pb_varint(len(payload)) + payload


def pb_str(no, s):
    return pb_len(no, s.encode() if isinstance(s, str) else s)


def pb_int(no, n):
    return pb_varint(no << 3) + pb_varint(n)


def tf_node(name, op, *inputs):
    return pb_str(1, name) + pb_str(2, op) + b"".join(pb_str(3, i) for i in inputs)


def tf_graph(nodes, functions=()):
    g = b"".join(pb_len(1, n) for n in nodes)
    if functions:
        g += pb_len(2, b"".join(pb_len(1, pb_len(1, pb_str(1, fname)) + b"".join(pb_len(3, n) for n in fnodes))
                                for fname, fnodes in functions))
    return g + pb_len(4, pb_int(1, 1286))  # versions { producer }


def saved_model(graph, user_metadata=()):
    meta = pb_len(1, pb_str(1, "") + pb_str(4, "serve")) + pb_len(2, graph)
    if user_metadata:
        meta += pb_len(7, b"".join(pb_len(1, pb_len(4, pb_str(1, "_tf_keras_layer") + pb_str(3, m))) for m in user_metadata))
    return pb_int(1, 1) + pb_len(2, meta)


BENIGN_TF = [tf_node("x", "Placeholder"), tf_node("w", "VarHandleOp"), tf_node("w/read", "ReadVariableOp", "w"),
             tf_node("mm", "MatMul", "x", "w/read"), tf_node("out", "Relu", "mm"),
             tf_node("saver/filename", "Const"), tf_node("saver/SaveV2", "SaveV2", "saver/filename"),
             tf_node("saver/RestoreV2", "RestoreV2", "saver/filename"), tf_node("saver/Merge", "MergeV2Checkpoints")]
BENIGN_FN = [("__inference_serve_12", [tf_node("mm", "MatMul", "x", "w"), tf_node("b", "BiasAdd", "mm"), tf_node("id", "Identity", "b")])]
write(BEN, "tf-savedmodel/saved_model.pb", saved_model(tf_graph(BENIGN_TF, BENIGN_FN)))
write(BEN, "tf-savedmodel/variables/variables.index", b"\x00" * 16)
write(BEN, "tf-frozen-graph.pb", tf_graph(BENIGN_TF[:5]))
write(MAL, "tf-savedmodel-readfile/saved_model.pb", saved_model(tf_graph(BENIGN_TF + [tf_node("path", "Const"), tf_node("secret", "ReadFile", "path")])))
write(MAL, "tf-savedmodel-writefile-in-function/saved_model.pb", saved_model(tf_graph(BENIGN_TF, BENIGN_FN + [
    ("__inference_drop_7", [tf_node("c", "Const"), tf_node("w", "WriteFile", "c", "c")])])))
write(MAL, "tf-savedmodel-pyfunc/saved_model.pb", saved_model(tf_graph(BENIGN_TF + [tf_node("cb", "PyFunc", "x"), tf_node("cb2", "EagerPyFunc", "x")])))
write(MAL, "tf-frozen-graph-readfile.pb", tf_graph(BENIGN_TF[:5] + [tf_node("r", "ReadFile", "x")]))
lambda_meta = json.dumps({"class_name": "Lambda", "name": "lambda", "config": {"name": "lambda", "function": [keras_code(EVIL_LAMBDA), None, None], "function_type": "lambda"}})
dense_meta = json.dumps({"class_name": "Dense", "name": "dense", "config": {"name": "dense", "units": 4}})
write(MAL, "keras-savedmodel-lambda/saved_model.pb", saved_model(tf_graph(BENIGN_TF)))
write(MAL, "keras-savedmodel-lambda/keras_metadata.pb", pb_len(1, pb_int(2, 1) + pb_str(3, "root.layer-0") + pb_str(4, "_tf_keras_layer") + pb_str(5, dense_meta))
      + pb_len(1, pb_int(2, 2) + pb_str(3, "root.layer-1") + pb_str(4, "_tf_keras_layer") + pb_str(5, lambda_meta)))
write(MAL, "tf-savedmodel-user-object-lambda/saved_model.pb", saved_model(tf_graph(BENIGN_TF), [dense_meta, lambda_meta]))
write(BEN, "keras-savedmodel/saved_model.pb", saved_model(tf_graph(BENIGN_TF), [dense_meta]))
write(BEN, "keras-savedmodel/keras_metadata.pb", pb_len(1, pb_int(2, 1) + pb_str(3, "root.layer-0") + pb_str(4, "_tf_keras_layer") + pb_str(5, dense_meta)))


# ---------------------------------------------------------------- ONNX
def onnx_files():
    import numpy as np  # noqa: E402
    import onnx  # noqa: E402  (python3-onnx)
    from onnx import TensorProto, helper, numpy_helper  # noqa: E402

    def mlp(weights_location=None, extra_nodes=(), opsets=(("", 13),), functions=(), subgraph_tensor=None):
        w = numpy_helper.from_array(np.ones((4, 2), dtype=np.float32), "w")
        b = numpy_helper.from_array(np.zeros(2, dtype=np.float32), "b")
        if weights_location is not None:
            w.ClearField("raw_data")
            w.data_location = TensorProto.EXTERNAL
            for k, v in (("location", weights_location), ("offset", "0"), ("length", "32")):
                e = w.external_data.add()
                e.key, e.value = k, v
        nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Add", ["h", "b"], ["a"]),
                 helper.make_node("Relu", ["a"], ["y"])] + list(extra_nodes)
        if subgraph_tensor is not None:
            then = helper.make_graph([helper.make_node("Identity", ["t"], ["o"])], "then", [],
                                     [helper.make_tensor_value_info("o", TensorProto.FLOAT, [2])], [subgraph_tensor])
            nodes.append(helper.make_node("If", ["cond"], ["z"], then_branch=then, else_branch=then))
        graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])], [w, b])
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets],
                              producer_name="modelgate-corpus", functions=list(functions))
        m.ir_version = 8
        return m

    write(BEN, "onnx-mlp.onnx", mlp().SerializeToString())
    os.makedirs(os.path.join(BEN, "onnx-external-data"))
    onnx.save_model(mlp(), os.path.join(BEN, "onnx-external-data", "model.onnx"), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
    ml = mlp(extra_nodes=[helper.make_node("Normalizer", ["y"], ["n"], domain="ai.onnx.ml", norm="L2")],
             opsets=(("", 13), ("ai.onnx.ml", 3)))
    write(BEN, "onnx-ml-operator.onnx", ml.SerializeToString())
    fn = helper.make_function("local.fns", "Double", ["i"], ["o"], [helper.make_node("Add", ["i", "i"], ["o"])],
                              [helper.make_opsetid("", 13)])
    local = mlp(extra_nodes=[helper.make_node("Double", ["y"], ["d"], domain="local.fns")],
                opsets=(("", 13), ("local.fns", 1)), functions=[fn])
    write(BEN, "onnx-local-function.onnx", local.SerializeToString())

    write(MAL, "onnx-external-absolute/model.onnx", mlp("/etc/passwd").SerializeToString())
    write(MAL, "onnx-external-dotdot/model.onnx", mlp("../../../../etc/shadow").SerializeToString())
    write(MAL, "onnx-external-symlink/model.onnx", mlp("weights.bin").SerializeToString())
    os.symlink("/etc/passwd", os.path.join(MAL, "onnx-external-symlink", "weights.bin"))
    sub = numpy_helper.from_array(np.ones(2, dtype=np.float32), "t")
    sub.ClearField("raw_data")
    sub.data_location = TensorProto.EXTERNAL
    e = sub.external_data.add()
    e.key, e.value = "location", "../secrets/key.bin"
    write(MAL, "onnx-subgraph-external-dotdot.onnx", mlp(subgraph_tensor=sub).SerializeToString())
    pyop = mlp(extra_nodes=[helper.make_node("PyOp", ["y"], ["p"], domain="ai.onnx.contrib")],
               opsets=(("", 13), ("ai.onnx.contrib", 1)))
    write(MAL, "onnx-python-operator.onnx", pyop.SerializeToString())


onnx_files()

print(f"corpus written ({'real libraries' if REAL else 'stand-ins only'}): "
      f"{len(os.listdir(MAL))} malicious, {len(os.listdir(BEN))} benign")
