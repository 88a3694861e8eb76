import type { Severity } from '../../core/findings.js';

// Allowlist-first classification of pickle globals. Module and name lists combine the
// published rule sets of picklescan, modelscan and fickling (see NOTICE) with the globals that
// real PyTorch, NumPy, scikit-learn and joblib files reference.

/** Builtins that construct plain values, in Python 3 and Python 2 alike. */
const SAFE_BUILTINS = [
  'bool',
  'int',
  'float',
  'complex',
  'str',
  'bytes',
  'bytearray',
  'list',
  'tuple',
  'set',
  'frozenset',
  'dict',
  'slice',
  'object',
];

/** Globals that benign ML pickles reference: module -> names ('*' = any name in the module). */
const SAFE: Record<string, readonly string[]> = {
  builtins: [
    ...SAFE_BUILTINS,
    'range',
    'len',
    'abs',
    'min',
    'max',
    'round',
    'sum',
    'divmod',
    'pow',
    'hash',
    'ord',
    'chr',
    'bin',
    'hex',
    'oct',
    'ascii',
    'repr',
    'Ellipsis',
    'NotImplemented',
    'True',
    'False',
    'None',
  ],
  __builtin__: [...SAFE_BUILTINS, 'unicode', 'long'],
  copyreg: ['_reconstructor'],
  copy_reg: ['_reconstructor'],
  _codecs: ['encode'],
  collections: ['OrderedDict', 'defaultdict', 'Counter', 'deque'],
  datetime: ['datetime', 'date', 'time', 'timedelta', 'timezone'],
  decimal: ['Decimal'],
  fractions: ['Fraction'],
  uuid: ['UUID'],
  pathlib: ['PosixPath', 'PurePosixPath', 'WindowsPath', 'PureWindowsPath', 'Path'],
  torch: [
    'Size',
    'Tensor',
    'device',
    'dtype',
    'finfo',
    'iinfo',
    'float16',
    'float32',
    'float64',
    'bfloat16',
    'half',
    'float',
    'double',
    'int8',
    'int16',
    'int32',
    'int64',
    'uint8',
    'bool',
    'complex64',
    'complex128',
    'qint8',
    'quint8',
    'qint32',
    'LongStorage',
    'FloatStorage',
    'HalfStorage',
    'DoubleStorage',
    'BFloat16Storage',
    'BoolStorage',
    'CharStorage',
    'ShortStorage',
    'IntStorage',
    'ByteStorage',
    'ComplexFloatStorage',
    'ComplexDoubleStorage',
    'QInt32Storage',
    'QInt8Storage',
    'QUInt8Storage',
    'QUInt2x4Storage',
    'QUInt4x2Storage',
    'UntypedStorage',
    'TypedStorage',
    'per_tensor_affine',
    'per_channel_affine',
    'contiguous_format',
    'channels_last',
    'preserve_format',
    'strided',
    'sparse_coo',
  ],
  'torch._utils': [
    '_rebuild_tensor',
    '_rebuild_tensor_v2',
    '_rebuild_tensor_v3',
    '_rebuild_parameter',
    '_rebuild_parameter_with_state',
    '_rebuild_qtensor',
    '_rebuild_sparse_tensor',
    '_rebuild_nested_tensor',
    '_rebuild_device_tensor_from_numpy',
    '_rebuild_meta_tensor_no_storage',
    '_rebuild_wrapper_subclass',
  ],
  'torch._tensor': ['_rebuild_from_type_v2'],
  'torch.nn.parameter': ['Parameter'],
  'torch.storage': ['UntypedStorage', 'TypedStorage'],
  numpy: [
    'dtype',
    'ndarray',
    'float64',
    'float32',
    'float16',
    'int64',
    'int32',
    'int16',
    'int8',
    'uint8',
    'uint16',
    'uint32',
    'uint64',
    'bool_',
    'complex64',
    'complex128',
    'str_',
    'bytes_',
    'object_',
  ],
  'numpy.core.multiarray': ['_reconstruct', 'scalar'],
  'numpy._core.multiarray': ['_reconstruct', 'scalar'],
  'numpy.core.numeric': ['_frombuffer'],
  'numpy._core.numeric': ['_frombuffer'],
  'numpy.dtypes': ['*'],
  'numpy.random._pickle': ['__randomstate_ctor', '__bit_generator_ctor', '__generator_ctor'],
  'numpy.random.mtrand': ['RandomState'],
  'numpy.random._mt19937': ['MT19937'],
  'numpy.random._pcg64': ['PCG64'],
  'joblib.numpy_pickle': ['NumpyArrayWrapper', 'NDArrayWrapper'],
  'scipy.sparse._csr': ['csr_matrix'],
  'scipy.sparse._csc': ['csc_matrix'],
  'scipy.sparse.csr': ['csr_matrix'],
  'pandas.core.frame': ['DataFrame'],
  'pandas.core.series': ['Series'],
  'pandas.core.internals.managers': ['BlockManager', 'SingleBlockManager'],
  'pandas.core.indexes.base': ['Index', '_new_Index'],
  'pandas.core.indexes.range': ['RangeIndex'],
  'pandas._libs.internals': ['_unpickle_block'],
};

/** Module prefixes whose classes are model components (estimators, tokenizers, configs). */
const SAFE_MODULE_PREFIXES = [
  'sklearn.',
  'xgboost.',
  'lightgbm.',
  'transformers.models.',
  'tokenizers.',
];

/** Builtins that run code or reach arbitrary objects, in Python 3 and Python 2 alike. */
const BUILTIN_DANGER = [
  'eval',
  'exec',
  'compile',
  'open',
  'getattr',
  'setattr',
  'delattr',
  '__import__',
  'breakpoint',
  'input',
  'globals',
  'locals',
  'vars',
  'apply',
  'execfile',
];

/** Callables that run code, read or write files, or load a second-stage payload. */
const CRITICAL_NAMES: Record<string, readonly string[]> = {
  builtins: [...BUILTIN_DANGER, 'memoryview', 'help'],
  __builtin__: [...BUILTIN_DANGER, 'file', 'reload'],

  __builtins__: ['*'],
  operator: ['attrgetter', 'itemgetter', 'methodcaller'],
  _operator: ['attrgetter', 'itemgetter', 'methodcaller'],
  functools: ['partial', 'reduce'],
  _functools: ['partial', 'reduce'],
  logging: ['FileHandler'],
  io: ['FileIO', 'open', 'open_code'],
  _io: ['FileIO', 'open', 'open_code'],
  types: ['CodeType', 'FunctionType', 'MethodType', 'LambdaType', 'ModuleType'],
  'torch.serialization': ['load', '_load'],
  torch: ['load', 'compile'],
  'torch.storage': ['_load_from_bytes'],
  'torch.jit.unsupported_tensor_ops': ['execWrapper'],
  'torch._inductor.codecache': ['compile_file'],
  'torch.utils.collect_env': ['run'],
  'torch.utils._config_module': ['ConfigModule.load_config', 'ConfigModule'],
  'torch.utils.data.datapipes.utils.decoder': ['basichandlers'],
  'torch._dynamo.guards': ['GuardBuilder.get'],
  'torch.fx.experimental.symbolic_shapes': ['ShapeEnv.evaluate_guards_expression'],
  numpy: ['load', 'loadtxt', 'fromfile', 'save', 'savetxt'],
  'numpy.testing._private.utils': ['runstring'],
  joblib: ['load'],
  'joblib.numpy_pickle': ['load'],
  'multiprocessing.util': ['spawnv_passfds'],
  'mlflow.projects.backend.local': ['_run_entry_point'],
  code: ['*'],
  trace: ['*'],
  uuid: ['_get_command_stdout'],
  'asyncio.unix_events': ['*'],
};

/** Whole modules (and every submodule) that no model file has reason to import. */
const CRITICAL_MODULES = [
  'os',
  'posix',
  'nt',
  'subprocess',
  '_posixsubprocess',
  'sys',
  'pty',
  'commands',
  'runpy',
  'pickle',
  '_pickle',
  'cPickle',
  'dill',
  'cloudpickle',
  'marshal',
  'shutil',
  'tempfile',
  'importlib',
  '_frozen_importlib',
  '_frozen_importlib_external',
  '_imp',
  'imp',
  'pkgutil',
  'zipimport',
  'ctypes',
  '_ctypes',
  'codeop',
  'pdb',
  'bdb',
  'cProfile',
  'profile',
  'timeit',
  'doctest',
  'pip',
  'ensurepip',
  'venv',
  'distutils',
  'setuptools',
  'idlelib',
  'lib2to3',
  'pydoc',
  'pexpect',
  'pipes',
  'multiprocessing',
  '_interpreters',
  '_xxsubinterpreters',
  'gc',
  'site',
  'inspect',
  'signal',
  '_signal',
  'threading',
  '_thread',
  'atexit',
  'sqlite3',
  '_sqlite3',
  'fileinput',
  'glob',
  'mmap',
  'shelve',
  'tarfile',
  'zipfile',
  'compileall',
  'py_compile',
  'linecache',
  '_osx_support',
  '_aix_support',
  '_pyrepl',
  'imaplib',
  'asyncio',
  'torch.hub',
  'torch._dynamo',
  'torch._inductor',
  'torch.jit',
  'numpy.f2py',
  'numpy.distutils',
  'test',
  'unittest',
  'builtins.__import__',
];

/** Modules that reach the network or a browser: data can leave, code can arrive. */
const HIGH_MODULES = [
  'socket',
  'ssl',
  'http',
  'httplib',
  'urllib',
  'urllib2',
  'urllib3',
  'requests',
  'aiohttp',
  'webbrowser',
  'smtplib',
  'ftplib',
  'poplib',
  'telnetlib',
  'nntplib',
  'socketserver',
  'xmlrpc',
  'select',
  'selectors',
  'httpx',
];

const inModule = (module: string, list: readonly string[]) =>
  list.some((m) => module === m || module.startsWith(`${m}.`));

/** How a global was classified, and why. */
export interface GlobalVerdict {
  severity: Severity | 'safe';
  ruleId: string;
  reason: string;
}

/**
 * Classifies one global. `called` says whether the pickle calls it (REDUCE, BUILD on it,
 * OBJ, NEWOBJ, INST): an unknown global that is only referenced is medium, one that is
 * called is high.
 */
export function classifyGlobal(module: string, name: string, called: boolean): GlobalVerdict {
  const full = `${module}.${name}`;
  const dunder = (s: string) => s.split('.').some((c) => /^__\w+__$/.test(c));
  const plainModule =
    module === '__builtin__' || module === '__builtins__' || module === '__main__';
  if ((!plainModule && dunder(module)) || dunder(name)) {
    return {
      severity: 'critical',
      ruleId: `pickle.dunder-access/${full}`,
      reason: 'reaches a dunder attribute (a sandbox escape path)',
    };
  }
  const names = CRITICAL_NAMES[module];
  if (
    names &&
    (names.includes('*') || names.includes(name) || names.includes(name.split('.')[0] ?? ''))
  ) {
    return {
      severity: 'critical',
      ruleId: `pickle.unsafe-global/${full}`,
      reason: 'a callable that runs code, touches files or loads a second payload',
    };
  }
  if (inModule(module, CRITICAL_MODULES)) {
    return {
      severity: 'critical',
      ruleId: `pickle.unsafe-global/${full}`,
      reason: `module ${module} can run commands or code`,
    };
  }
  if (inModule(module, HIGH_MODULES)) {
    return {
      severity: 'high',
      ruleId: `pickle.network-global/${full}`,
      reason: `module ${module} reaches the network`,
    };
  }
  const safe = SAFE[module];
  if (safe && (safe.includes('*') || safe.includes(name)))
    return { severity: 'safe', ruleId: '', reason: 'allowlisted' };
  if (
    SAFE_MODULE_PREFIXES.some((p) => module.startsWith(p)) &&
    !name.includes('.') &&
    /^[A-Z_]/.test(name)
  ) {
    return { severity: 'safe', ruleId: '', reason: 'a class of a known ML library' };
  }
  return called
    ? {
        severity: 'high',
        ruleId: `pickle.unknown-global-called/${full}`,
        reason: 'not on the allowlist, and the pickle calls it',
      }
    : {
        severity: 'medium',
        ruleId: `pickle.unknown-global/${full}`,
        reason: 'not on the allowlist',
      };
}
