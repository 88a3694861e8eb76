import { closeSync, lstatSync, openSync, readdirSync, readSync, realpathSync } from 'node:fs';
import { basename, dirname, join, posix, resolve, sep } from 'node:path';
import { gunzipSync, inflateSync } from 'node:zlib';
import type { Finding, FindingLocation, Severity } from '../../core/findings.js';
import { sha256FileSync } from '../../core/hash.js';
import { BufferReader, FileReader } from './byte-reader.js';
import { escapesFolder, type FormatIssue } from './format-issue.js';
import { checkGguf, isGguf } from './gguf.js';
import {
  Hdf5TimeoutError,
  isHdf5,
  KERAS_ATTRIBUTES,
  loadHdf5,
  readRootAttributes,
} from './hdf5.js';

export { loadHdf5 };

import { checkKerasConfig, MAX_KERAS_CONFIG } from './keras.js';
import { checkOnnx, isOnnxName, type SiblingInfo, type SiblingLookup } from './onnx.js';
import { classifyGlobal } from './pickle-policy.js';
import { type PickleWalk, walkPickle } from './pickle-walker.js';
import { BufferSource, type ByteSource, FileSource } from './protobuf-wire.js';
import { checkSafetensors, looksLikeSafetensors } from './safetensors.js';
import { checkTensorflow, tensorflowKind } from './tensorflow.js';
import { InflateLimitError, isZip, listZip, readMember } from './zip-reader.js';

/** The scanner's identity, recorded with every evaluation it produces. */
export const SCANNER_ID = 'modelgate-artifact-scan';
export const SCANNER_VERSION = '0.1.0';

/** Limits on what one scan may read into memory or recurse into. */
export interface ScanLimits {
  /** Largest archive member (inflated) read into memory. */
  maxMemberBytes: number;
  /** How deep archives inside archives and pickles inside pickles are followed. */
  maxDepth: number;
  /** Most files scanned under one folder. */
  maxFiles: number;
  /**
   * Longest wait for the HDF5 library on one file. Reading a Keras config takes milliseconds;
   * crafted files can make the library loop, and are then reported instead.
   */
  hdf5TimeoutMs: number;
}

export const DEFAULT_SCAN_LIMITS: ScanLimits = {
  maxMemberBytes: 512 * 1024 * 1024,
  maxDepth: 3,
  maxFiles: 100_000,
  hdf5TimeoutMs: 500,
};

/** One file the scan looked at. */
export interface ScannedFile {
  path: string;
  size: number;
  sha256: string;
  format: string;
}

/** Everything a scan found. */
export interface ScanReport {
  scanner: { id: string; version: string };
  files: ScannedFile[];
  findings: Finding[];
}

const PICKLE_EXTENSIONS = /\.(pkl|pickle|joblib|dill|dat|data|pt|pth|bin|ckpt)$/i;
const LEGACY_TORCH_MAGIC = Buffer.from([
  0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19,
]);
const NPY_MAGIC = Buffer.from('\x93NUMPY', 'latin1');

const SEVEN_ZIP_MAGIC = Buffer.from([0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c]);
const is7z = (b: Buffer) => b.subarray(0, 6).equals(SEVEN_ZIP_MAGIC);
const isPickleStart = (b: Buffer) => b.length >= 2 && b[0] === 0x80 && (b[1] ?? 0) <= 5;
const isTar = (b: Buffer) => b.length >= 262 && b.subarray(257, 262).toString('latin1') === 'ustar';

function readHead(path: string, n: number): Buffer {
  const fd = openSync(path, 'r');
  try {
    const b = Buffer.alloc(n);
    const got = readSync(fd, b, 0, n, 0);
    return b.subarray(0, got);
  } finally {
    closeSync(fd);
  }
}

/** Collects findings, merging repeats of one rule at one location into a count. */
class Findings {
  readonly list: Finding[] = [];
  private readonly seen = new Map<string, Finding>();

  add(
    ruleId: string,
    severity: Severity,
    title: string,
    location: FindingLocation,
    evidence: Record<string, string | number | boolean> = {},
    references: string[] = [],
  ): void {
    const key = `${ruleId}|${location.file}|${location.member ?? ''}`;
    const prior = this.seen.get(key);
    if (prior) {
      prior.evidence.occurrences = Number(prior.evidence.occurrences ?? 1) + 1;
      return;
    }
    const f: Finding = { ruleId, severity, title, location, evidence, references };
    this.seen.set(key, f);
    this.list.push(f);
  }
}

const PICKLE_REFS = ['CWE-502', 'AML.T0011.000'];

/** Records a format checker's issues as findings at `where`. */
function addIssues(out: Findings, issues: FormatIssue[], where: FindingLocation): void {
  for (const i of issues) {
    const loc: FindingLocation = { ...where };
    if (i.member) loc.member = where.member ? `${where.member}/${i.member}` : i.member;
    if (i.offset !== undefined) loc.offset = i.offset;
    out.add(i.ruleId, i.severity, i.title, loc, { detail: i.detail }, i.references ?? []);
  }
}

/** Checks a Keras config and scans what it embeds (a pickled torch module, for one). */
function kerasFindings(
  json: string,
  source: string,
  where: FindingLocation,
  out: Findings,
  depth: number,
  limits: ScanLimits,
): void {
  const k = checkKerasConfig(json, source);
  addIssues(out, k.issues, where);
  if (depth >= limits.maxDepth) return;
  for (const e of k.embedded) {
    const inner = { ...where, member: `${where.member ? `${where.member}/` : ''}${e.where}` };
    scanBuffer(e.bytes, inner, out, depth + 1, limits);
  }
}

/** Turns one pickle walk into findings; follows embedded pickles. */
function pickleFindings(
  walk: PickleWalk,
  where: FindingLocation,
  out: Findings,
  depth: number,
  limits: ScanLimits,
  baseOffset = 0,
): void {
  const at = (offset: number): FindingLocation => ({ ...where, offset: baseOffset + offset });
  for (const g of walk.globals) {
    if (g.module === '?') continue; // reported as unresolved below
    const v = classifyGlobal(g.module, g.name, g.called);
    if (v.severity === 'safe') continue;
    out.add(
      v.ruleId,
      v.severity,
      `${v.severity === 'critical' ? 'Dangerous' : 'Unexpected'} import ${g.module}.${g.name}${g.called ? ' (called)' : ''}: ${v.reason}`,
      at(g.offset),
      { global: `${g.module}.${g.name}`, opcode: g.opcode, called: g.called },
      PICKLE_REFS,
    );
  }
  for (const i of walk.issues) {
    const loc = at(i.offset);
    switch (i.kind) {
      case 'unresolved-global':
        out.add(
          'pickle.unresolved-global',
          'critical',
          'Import whose name is computed at load time (STACK_GLOBAL on non-literal operands)',
          loc,
          { detail: i.detail },
          PICKLE_REFS,
        );
        break;
      case 'ext-code':
        out.add(
          'pickle.extension-code',
          'high',
          'Import through the copyreg extension registry, chosen by the loading process',
          loc,
          { detail: i.detail },
          PICKLE_REFS,
        );
        break;
      case 'build-on-global':
        out.add(
          'pickle.build-on-global',
          'high',
          'BUILD changes attributes of an imported module or class',
          loc,
          { detail: i.detail },
          PICKLE_REFS,
        );
        break;
      case 'parse-error':
        out.add(
          'pickle.parse-error',
          'medium',
          'The pickle stream is malformed; what came before the error was still checked',
          loc,
          { detail: i.detail },
        );
        break;
      case 'trailing-data':
        out.add(
          'pickle.trailing-data',
          'medium',
          'Bytes after the last pickle: loaders and scanners may disagree on them',
          loc,
          { detail: i.detail },
        );
        break;
      case 'unknown-memo':
        out.add(
          'pickle.unknown-memo',
          'medium',
          'Memo read before it was written: the stream is crafted or corrupt',
          loc,
          { detail: i.detail },
        );
        break;
      case 'limit':
        out.add(
          'pickle.limit',
          'medium',
          'The stream exceeds a scanner limit; the rest was not checked',
          loc,
          { detail: i.detail },
        );
        break;
      case 'misplaced-proto':
        out.add('pickle.misplaced-proto', 'low', 'PROTO opcode in an unusual place', loc, {
          detail: i.detail,
        });
        break;
    }
  }
  for (const e of walk.embedded) {
    out.add(
      'pickle.embedded-pickle',
      'high',
      `A ${e.encoding === 'raw' ? '' : `${e.encoding}-encoded `}pickle is embedded in a string or bytes value`,
      at(e.offset),
      { encoding: e.encoding },
      PICKLE_REFS,
    );
    if (depth < limits.maxDepth) {
      pickleFindings(
        walkPickle(e.bytes),
        { ...where, member: `${where.member ? `${where.member}/` : ''}@${baseOffset + e.offset}` },
        out,
        depth + 1,
        limits,
      );
    }
  }
}

/** Parses a NumPy header; returns where the data starts and whether the dtype holds objects. */
function npyHeader(b: Buffer): { dataOffset: number; hasObject: boolean } | undefined {
  if (b.length < 10 || !b.subarray(0, 6).equals(NPY_MAGIC)) return undefined;
  const major = b[6] ?? 0;
  const headerLen = major === 1 ? b.readUInt16LE(8) : b.length >= 12 ? b.readUInt32LE(8) : 0;
  const start = major === 1 ? 10 : 12;
  const header = b.subarray(start, start + headerLen).toString('latin1');
  return {
    dataOffset: start + headerLen,
    hasObject: /'descr':\s*(?:'[|<>=]?O|\[.*'[|<>=]?O)/s.test(header),
  };
}

/** 7z is recognised but not decoded (no LZMA decoder here): its contents are unchecked. */
function sevenZip(where: FindingLocation, out: Findings): void {
  out.add(
    'archive.unsupported/7z',
    'high',
    '7z archive: the scanner cannot look inside, so whatever it holds is unchecked',
    where,
    {},
    ['CWE-502'],
  );
}

/** Scans bytes held in memory (an archive member or a nested file). */
function scanBuffer(
  buf: Buffer,
  where: FindingLocation,
  out: Findings,
  depth: number,
  limits: ScanLimits,
): string {
  if (buf.subarray(0, 6).equals(NPY_MAGIC)) {
    const h = npyHeader(buf);
    if (h?.hasObject) {
      out.add(
        'numpy.object-array',
        'info',
        'NumPy array of Python objects: loading it unpickles',
        where,
        {},
      );
      pickleFindings(
        walkPickle(buf.subarray(h.dataOffset)),
        where,
        out,
        depth,
        limits,
        h.dataOffset,
      );
    }
    return 'numpy';
  }
  if (buf.subarray(0, LEGACY_TORCH_MAGIC.length).equals(LEGACY_TORCH_MAGIC)) {
    pickleFindings(
      walkPickle(new BufferReader(buf), undefined, { stopAfter: 5 }),
      where,
      out,
      depth,
      limits,
    );
    return 'pytorch-legacy';
  }
  if (is7z(buf)) {
    sevenZip(where, out);
    return '7z';
  }
  if (isZip(buf)) {
    if (depth >= limits.maxDepth) {
      out.add(
        'archive.limit',
        'medium',
        `Archives nested deeper than ${limits.maxDepth} levels: not scanned`,
        where,
        {},
      );
    } else scanZip(new BufferSource(buf), where, out, depth, limits);
    return 'zip';
  }
  if (isPickleStart(buf) || (where.member ?? where.file).match(PICKLE_EXTENSIONS)) {
    pickleFindings(walkPickle(buf), where, out, depth, limits);
    return 'pickle';
  }
  return 'unknown';
}

function scanZip(
  src: ByteSource,
  where: FindingLocation,
  out: Findings,
  depth: number,
  limits: ScanLimits,
): void {
  const { members, problems } = listZip(src);
  for (const p of problems)
    out.add('archive.malformed', 'low', `Archive structure: ${p}`, where, { detail: p });
  const inside = (name: string) => (where.member ? `${where.member}/${name}` : name);
  const names = new Set(members.map((m) => m.name));
  const keras =
    names.has('config.json') && (names.has('metadata.json') || /\.keras$/i.test(where.file));
  for (const m of members) {
    const loc = { file: where.file, member: inside(m.name) };
    if (escapesFolder(m.name) || (m.localName && escapesFolder(m.localName))) {
      out.add(
        'archive.path-traversal',
        'high',
        `Archive member name leaves the extraction folder: ${m.name}`,
        loc,
        { name: m.localName ?? m.name },
        ['CWE-22'],
      );
    }
    if (m.localName) {
      out.add(
        'archive.name-mismatch',
        'medium',
        'Member name differs between the central directory and the local header',
        loc,
        { central: m.name, local: m.localName },
      );
    }
    if (m.name.endsWith('/')) continue;
    // PyTorch's reader ignores the encryption bit, so a member that claims to be encrypted is
    // read as plain data first; only one whose bytes mean nothing is reported as unreadable.
    const encrypted = (m.flags & 0x01) !== 0;
    const opaque = () =>
      out.add(
        'archive.encrypted-member',
        'high',
        'Encrypted archive member: its content cannot be checked',
        loc,
        {},
      );
    const kerasConfig = keras && m.name === 'config.json';
    let head: Buffer;
    try {
      head = readMember(src, m, limits.maxMemberBytes, true);
    } catch (e) {
      if (encrypted) opaque();
      else
        out.add(
          'archive.unreadable-member',
          'medium',
          `Member could not be read: ${(e as Error).message}`,
          loc,
          {},
        );
      continue;
    }
    // Content decides, not the name: a pickle under any name is scanned.
    const recognised =
      kerasConfig ||
      isPickleStart(head) ||
      head.subarray(0, 6).equals(NPY_MAGIC) ||
      isZip(head) ||
      is7z(head);
    if (!recognised && encrypted) {
      opaque();
      continue;
    }
    if (!recognised && !/\.(pkl|pickle)$/i.test(m.name)) continue;
    let body: Buffer;
    try {
      body = readMember(src, m, kerasConfig ? MAX_KERAS_CONFIG : limits.maxMemberBytes);
    } catch (e) {
      const limit = e instanceof InflateLimitError;
      out.add(
        limit ? 'archive.limit' : 'archive.unreadable-member',
        'medium',
        `Member not scanned: ${(e as Error).message}`,
        loc,
        {},
      );
      continue;
    }
    if (kerasConfig) kerasFindings(body.toString('utf8'), m.name, loc, out, depth, limits);
    else scanBuffer(body, loc, out, depth + 1, limits);
  }
}

function scanTar(
  path: string,
  size: number,
  file: string,
  out: Findings,
  depth: number,
  limits: ScanLimits,
): void {
  const fd = openSync(path, 'r');
  try {
    let pos = 0;
    while (pos + 512 <= size) {
      const h = Buffer.alloc(512);
      readSync(fd, h, 0, 512, pos);
      if (h.every((b) => b === 0)) break;
      const name = h.subarray(0, 100).toString('utf8').replace(/\0.*$/s, '');
      const prefix = h.subarray(345, 500).toString('utf8').replace(/\0.*$/s, '');
      const full = prefix ? `${prefix}/${name}` : name;
      const len = Number.parseInt(
        h.subarray(124, 136).toString('latin1').replace(/\0.*$/s, '').trim() || '0',
        8,
      );
      const type = String.fromCharCode(h[156] ?? 48);
      const loc = { file, member: full };
      if (Number.isNaN(len)) {
        out.add('archive.malformed', 'medium', 'Tar header with an unreadable size', loc, {});
        break;
      }
      if (escapesFolder(full))
        out.add(
          'archive.path-traversal',
          'high',
          `Archive member name leaves the extraction folder: ${full}`,
          loc,
          { name: full },
          ['CWE-22'],
        );
      if (type === '1' || type === '2') {
        const target = h.subarray(157, 257).toString('utf8').replace(/\0.*$/s, '');
        if (escapesFolder(target))
          out.add(
            'archive.link-traversal',
            'high',
            `Archive link points outside the extraction folder: ${target}`,
            loc,
            { target },
            ['CWE-59'],
          );
      }
      if ((type === '0' || type === '\0') && len > 0 && len <= limits.maxMemberBytes) {
        const body = Buffer.alloc(len);
        readSync(fd, body, 0, len, pos + 512);
        scanBuffer(body, loc, out, depth + 1, limits);
      }
      pos += 512 + Math.ceil(len / 512) * 512;
    }
  } finally {
    closeSync(fd);
  }
}

/** The compression joblib (or a user) applied to a pickle file, from its first bytes. */
function compressionOf(head: Buffer): 'zlib' | 'gzip' | 'bz2' | 'xz' | 'lz4' | undefined {
  if (head.length < 4) return undefined;
  // zlib: CMF 0x78 and a header checksum that divides by 31.
  if (head[0] === 0x78 && ((head[0] << 8) | (head[1] ?? 0)) % 31 === 0) return 'zlib';
  if (head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.subarray(0, 3).toString('latin1') === 'BZh') return 'bz2';
  if (head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
  if (head.readUInt32LE(0) === 0x184d2204) return 'lz4';
  return undefined;
}

function scanCompressed(
  path: string,
  size: number,
  file: string,
  method: NonNullable<ReturnType<typeof compressionOf>>,
  out: Findings,
  limits: ScanLimits,
): void {
  if (method !== 'zlib' && method !== 'gzip') {
    out.add(
      'file.unsupported-compression',
      'medium',
      `Compressed with ${method}, which the scanner cannot read yet: not scanned`,
      { file },
      { method },
    );
    return;
  }
  if (size > limits.maxMemberBytes) {
    out.add(
      'file.limit',
      'medium',
      `Compressed file over ${limits.maxMemberBytes} bytes: not scanned`,
      { file },
      {},
    );
    return;
  }
  const raw = readHead(path, size);
  let body: Buffer;
  try {
    body = (method === 'zlib' ? inflateSync : gunzipSync)(raw, {
      maxOutputLength: limits.maxMemberBytes,
    });
  } catch (e) {
    const tooBig = (e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE';
    out.add(
      tooBig ? 'file.limit' : 'file.unparseable',
      'medium',
      tooBig
        ? `Inflates past ${limits.maxMemberBytes} bytes (a compression bomb?): not scanned`
        : `Compressed stream is broken: ${(e as Error).message}`,
      { file },
      { method },
    );
    return;
  }
  scanBuffer(body, { file, member: `(${method})` }, out, 1, limits);
}

/** Scans one file; `file` is the name reported in findings. */
/** How one file is reached and what is known about it before its scan. */
interface FileContext {
  /** Resolves files the model refers to (ONNX external data). */
  sibling?: SiblingLookup;
  /** Called with each file an ONNX model names as its external data, relative to the model. */
  onExternalData?: (relativePath: string) => void;
  /**
   * The file holds an ONNX model's raw tensor bytes: it is scanned only when its content has
   * the magic of a known format, not read as a pickle because of its name.
   */
  rawTensorData?: boolean;
}

function scanFile(
  path: string,
  file: string,
  size: number,
  out: Findings,
  limits: ScanLimits,
  ctx: FileContext = {},
): string {
  const head = readHead(path, 512);
  if (isZip(head)) {
    const src = new FileSource(path, size);
    try {
      scanZip(src, { file }, out, 0, limits);
    } finally {
      src.close();
    }
    return /\.keras$/i.test(file) ? 'keras' : 'zip';
  }
  if (is7z(head)) {
    sevenZip({ file }, out);
    return '7z';
  }
  if (isHdf5(head)) {
    let attrs: ReturnType<typeof readRootAttributes>;
    try {
      attrs = readRootAttributes(path, KERAS_ATTRIBUTES, limits.hdf5TimeoutMs);
    } catch (e) {
      const timeout = e instanceof Hdf5TimeoutError;
      out.add(
        timeout ? 'hdf5.limit' : 'hdf5.unparseable',
        'medium',
        timeout
          ? `The HDF5 library did not finish reading this file in ${limits.hdf5TimeoutMs} ms (a crafted file?): not checked`
          : `Not a readable HDF5 file: ${(e as Error).message}`,
        { file },
        {},
      );
      return 'hdf5';
    }
    for (const [name, json] of Object.entries(attrs.values))
      kerasFindings(json, `attribute ${name}`, { file }, out, 0, limits);
    return Object.keys(attrs.values).length > 0 ? 'keras-h5' : 'hdf5';
  }
  const tfKind = tensorflowKind(file);
  if (isOnnxName(file) || tfKind) {
    const src = new FileSource(path, size);
    try {
      if (isOnnxName(file)) {
        const onnx = checkOnnx(src, ctx.sibling);
        addIssues(out, onnx.issues, { file });
        for (const f of onnx.externalFiles) ctx.onExternalData?.(f);
        return 'onnx';
      }
      const tf = checkTensorflow(src, tfKind ?? 'graph');
      addIssues(out, tf.issues, { file });
      for (const [i, json] of tf.kerasConfigs.entries())
        kerasFindings(json, `Keras metadata ${i}`, { file }, out, 0, limits);
      return tfKind === 'keras-metadata' ? 'keras-metadata' : 'tensorflow';
    } finally {
      src.close();
    }
  }
  if (isTar(head)) {
    scanTar(path, size, file, out, 0, limits);
    return 'tar';
  }
  if (head.subarray(0, 6).equals(NPY_MAGIC)) {
    const h = npyHeader(readHead(path, 65_536 + 12));
    if (h?.hasObject) {
      out.add(
        'numpy.object-array',
        'info',
        'NumPy array of Python objects: loading it unpickles',
        { file },
        {},
      );
      const r = new FileReader(openSync(path, 'r'), size - h.dataOffset, h.dataOffset);
      try {
        pickleFindings(walkPickle(r), { file }, out, 0, limits, h.dataOffset);
      } finally {
        r.close();
      }
    }
    return 'numpy';
  }
  if (isGguf(head)) {
    for (const i of checkGguf(path, size)) {
      out.add(
        i.ruleId,
        i.severity,
        i.title,
        { file },
        { detail: i.detail },
        i.ruleId.endsWith('/ssti') ? ['CVE-2024-34359', 'CWE-1336'] : [],
      );
    }
    return 'gguf';
  }
  if (looksLikeSafetensors(head, size) || (!ctx.rawTensorData && /\.safetensors$/i.test(file))) {
    for (const i of checkSafetensors(path, size))
      out.add(i.ruleId, i.severity, i.title, { file }, { detail: i.detail });
    return 'safetensors';
  }
  const compression = compressionOf(head);
  if (compression) {
    scanCompressed(path, size, file, compression, out, limits);
    return `${compression}-compressed`;
  }
  const legacy = head.subarray(0, LEGACY_TORCH_MAGIC.length).equals(LEGACY_TORCH_MAGIC);
  if (legacy || isPickleStart(head) || (!ctx.rawTensorData && PICKLE_EXTENSIONS.test(file))) {
    const r = FileReader.open(path, size);
    try {
      pickleFindings(
        walkPickle(r, undefined, legacy ? { stopAfter: 5 } : {}),
        { file },
        out,
        0,
        limits,
      );
    } finally {
      r.close();
    }
    return legacy ? 'pytorch-legacy' : 'pickle';
  }
  return ctx.rawTensorData ? 'onnx-external-data' : 'unknown';
}

/** One file to scan: where its bytes are, the name findings give it, how to resolve its references. */
interface ScanEntry {
  path: string;
  name: string;
  size: number;
  /** Key under which other files refer to it (its real path, or its name in a version). */
  key: string;
  sibling: SiblingLookup;
  /** Turns a path an ONNX model names (relative to the model) into the key of that file. */
  keyOf: (relativePath: string) => string;
}

/**
 * Scans entries in order, but ONNX models first, so that the files holding their external
 * tensor data are known (and not mistaken for broken pickles) when their turn comes.
 */
function scanEntries(
  entries: ScanEntry[],
  out: Findings,
  limits: ScanLimits,
  onProgress: (fraction: number) => void,
  onError: (e: unknown, entry: ScanEntry) => void = () => {},
): ScannedFile[] {
  const total = entries.reduce((a, e) => a + e.size, 0) || 1;
  let done = 0;
  const rawData = new Set<string>();
  const formats = new Map<ScanEntry, string>();
  const order = [...entries].sort(
    (a, b) => Number(!isOnnxName(a.name)) - Number(!isOnnxName(b.name)),
  );
  for (const e of order) {
    onProgress(done / total);
    done += e.size;
    let format: string;
    try {
      format = scanFile(e.path, e.name, e.size, out, limits, {
        sibling: e.sibling,
        onExternalData: (rel) => rawData.add(e.keyOf(rel)),
        rawTensorData: rawData.has(e.key),
      });
    } catch (err) {
      onError(err, e);
      out.add(
        'file.unparseable',
        'medium',
        `The file could not be parsed: ${(err as Error).message}`,
        { file: e.name },
        {},
      );
      format = 'unparseable';
    }
    formats.set(e, format);
  }
  return entries.map((e) => ({
    path: e.name,
    size: e.size,
    sha256: sha256FileSync(e.path),
    format: formats.get(e) ?? 'unknown',
  }));
}

/**
 * Scans files given as (name, path) pairs: `name` is what findings call the file (its path
 * in a model version), `path` where its bytes are (a blob in the store).
 */
export function scanNamedFiles(
  files: { name: string; path: string }[],
  limits: ScanLimits = DEFAULT_SCAN_LIMITS,
  onProgress: (fraction: number) => void = () => {},
): ScanReport {
  const out = new Findings();
  const sizes = new Map(files.map((f) => [f.name, lstatSync(f.path).size]));
  // A model's references to other files (ONNX external data) resolve among the version's files.
  const entries = files.map((f): ScanEntry => {
    const keyOf = (rel: string) => posix.normalize(posix.join(posix.dirname(f.name), rel));
    return {
      path: f.path,
      name: f.name,
      size: sizes.get(f.name) ?? 0,
      key: f.name,
      keyOf,
      sibling: (rel) => {
        const size = sizes.get(keyOf(rel));
        return size === undefined ? { kind: 'missing' } : { kind: 'file', size };
      },
    };
  });
  const scanned = scanEntries(entries, out, limits, onProgress);
  return {
    scanner: { id: SCANNER_ID, version: SCANNER_VERSION },
    files: scanned,
    findings: sortFindings(out.list),
  };
}

const ORDER = { critical: 0, high: 1, medium: 2, low: 3, info: 4 };
function sortFindings(list: Finding[]): Finding[] {
  return list.sort(
    (a, b) =>
      ORDER[a.severity] - ORDER[b.severity] || a.location.file.localeCompare(b.location.file),
  );
}

/** Thrown when a path cannot be scanned at all (missing, unreadable, a symlink). */
export class ScanInputError extends Error {}

/** Resolves a file a model refers to, relative to the model, within the folder being scanned. */
function diskSibling(modelPath: string, root: string): SiblingLookup {
  return (rel): SiblingInfo => {
    let real: string;
    try {
      real = realpathSync(resolve(dirname(modelPath), rel));
    } catch {
      return { kind: 'missing' };
    }
    if (!real.startsWith(root + sep)) return { kind: 'escapes', target: real };
    try {
      const st = lstatSync(real);
      return st.isFile() ? { kind: 'file', size: st.size } : { kind: 'missing' };
    } catch {
      return { kind: 'missing' };
    }
  };
}

/**
 * Scans files and folders (recursively) without executing or deserialising anything.
 * Findings name files relative to the folder given, or by file name for a single file.
 */
export function scanPaths(paths: string[], limits: ScanLimits = DEFAULT_SCAN_LIMITS): ScanReport {
  const out = new Findings();
  const entries: ScanEntry[] = [];
  const visit = (abs: string, shown: string, root: string) => {
    let st: ReturnType<typeof lstatSync>;
    try {
      st = lstatSync(abs);
    } catch (e) {
      throw new ScanInputError(
        `cannot read ${abs}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or folder' : (e as Error).message}`,
      );
    }
    if (st.isSymbolicLink()) {
      out.add(
        'file.symlink',
        'medium',
        'Symbolic link in a model folder (not followed)',
        { file: shown },
        {},
      );
      return;
    }
    if (st.isDirectory()) {
      for (const e of readdirSync(abs).sort()) {
        if (entries.length >= limits.maxFiles)
          throw new ScanInputError(`more than ${limits.maxFiles} files under ${abs}`);
        visit(join(abs, e), shown ? `${shown}/${e}` : e, root);
      }
      return;
    }
    if (!st.isFile()) return;
    entries.push({
      path: abs,
      name: shown,
      size: st.size,
      key: abs,
      keyOf: (rel) => resolve(dirname(abs), rel),
      sibling: diskSibling(abs, root),
    });
  };
  for (const p of paths) {
    const st = (() => {
      try {
        return lstatSync(p);
      } catch {
        throw new ScanInputError(`cannot read ${p}: no such file or folder`);
      }
    })();
    // References out of a model (ONNX external data) must stay inside the folder scanned, or
    // inside the file's own folder when a single file is scanned.
    const abs = resolve(p);
    const root = realpathSync(st.isDirectory() ? abs : dirname(abs));
    visit(abs, st.isDirectory() ? '' : basename(p), root);
  }
  const files = scanEntries(
    entries,
    out,
    limits,
    () => {},
    (e, entry) => {
      if ((e as NodeJS.ErrnoException).code === 'EACCES')
        throw new ScanInputError(`cannot read ${entry.path}: permission denied`);
    },
  );
  return {
    scanner: { id: SCANNER_ID, version: SCANNER_VERSION },
    files,
    findings: sortFindings(out.list),
  };
}
