/**
 * Reads the few HDF5 attributes a Keras model keeps its configuration in, with h5wasm (the HDF5
 * C library compiled to WebAssembly: a malformed file can fail inside the wasm sandbox but not
 * reach the process). The library runs in its own thread: the scanner waits for each answer
 * synchronously, with a time limit, and ends the thread when a crafted file makes the library
 * loop (fuzzing found such files), so no input can hang a scan.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  MessageChannel,
  type MessagePort,
  receiveMessageOnPort,
  Worker,
} from 'node:worker_threads';

/** HDF5's signature at offset 0. */
const SIGNATURE = Buffer.from([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]);

export function isHdf5(head: Buffer): boolean {
  return head.subarray(0, 8).equals(SIGNATURE);
}

/** Attribute names Keras writes its configuration under. */
export const KERAS_ATTRIBUTES = ['model_config', 'training_config'] as const;

export interface Hdf5Attributes {
  /** Text of each requested root attribute that exists and holds a string. */
  values: Record<string, string>;
  /** Names of the file's root groups (Keras: `model_weights`, `optimizer_weights`). */
  groups: string[];
}

/** The HDF5 library did not answer within the time limit. */
export class Hdf5TimeoutError extends Error {}

/** The HDF5 library aborted: its thread is replaced before the next file. */
class Hdf5FatalError extends Error {}

const STARTUP_MS = 30_000;

/**
 * h5wasm's Node build, found the way Node finds packages (its `exports` lists only an `import`
 * entry, which `require.resolve` cannot see).
 */
function h5wasmUrl(): string {
  const require = createRequire(import.meta.url);
  for (const dir of require.resolve.paths('h5wasm') ?? []) {
    const p = join(dir, 'h5wasm', 'dist', 'node', 'hdf5_hl.js');
    if (existsSync(p)) return pathToFileURL(p).href;
  }
  throw new Error('the h5wasm package is not installed');
}

// The reader's thread, as plain JavaScript so that it needs no TypeScript loader (a loader's
// own thread would wait on the scanner's, which is blocked waiting for this one). It answers
// one request at a time on its port and raises a flag in shared memory with each answer, so
// the scanner can wait synchronously and give up, ending the thread, when the C library loops.
const THREAD_SOURCE = `
const { workerData } = require('node:worker_threads');
const { port, flag, lib } = workerData;
// The wasm runtime prints its own notices (an abort inside the C library, say); the scanner
// reports what matters as findings, so they are not passed on to the user's terminal.
console.log = console.warn = console.error = () => {};
const answer = (message) => {
  port.postMessage(message);
  Atomics.store(flag, 0, 1);
  Atomics.notify(flag, 0);
};
import(lib).then(async ({ default: h5 }) => {
  const mod = await h5.ready;
  mod.activate_throwing_error_handler();
  port.on('message', ({ path, names }) => {
    try {
      const file = new h5.File(path, 'r');
      try {
        if (file.file_id < 0n) throw new Error('not a readable HDF5 file');
        const values = {};
        const attrs = file.attrs;
        for (const n of names) {
          const v = attrs[n] && attrs[n].value;
          if (typeof v === 'string') values[n] = v;
          else if (v instanceof Uint8Array) values[n] = Buffer.from(v).toString('utf8');
        }
        answer({ ok: true, result: { values, groups: file.keys() } });
      } finally {
        file.close();
      }
    } catch (e) {
      const error = String((e && e.message) || e);
      // After an abort the library's state is gone: this thread must not serve another file.
      answer({ ok: false, error, fatal: e instanceof WebAssembly.RuntimeError || error.includes('Aborted(') });
    }
  });
  answer({ ready: true });
}, (e) => answer({ ready: false, error: String(e) }));
`;

class Hdf5Thread {
  private readonly worker: Worker;
  private readonly port: MessagePort;
  private readonly flag = new Int32Array(new SharedArrayBuffer(4));
  private ready = false;

  constructor() {
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    this.worker = new Worker(THREAD_SOURCE, {
      eval: true,
      workerData: { port: port2, flag: this.flag, lib: h5wasmUrl() },
      transferList: [port2],
    });
    // Neither keeps a CLI run alive once its scan is done.
    this.worker.unref();
    this.port.unref();
  }

  /** Waits for the next answer; undefined when `ms` passed first. */
  private answer(ms: number): Record<string, unknown> | undefined {
    if (Atomics.wait(this.flag, 0, 0, ms) === 'timed-out') return undefined;
    Atomics.store(this.flag, 0, 0);
    return receiveMessageOnPort(this.port)?.message as Record<string, unknown>;
  }

  waitReady(): void {
    if (this.ready) return;
    const m = this.answer(STARTUP_MS);
    if (!m?.ready) throw new Error(`the HDF5 reader did not start: ${m?.error ?? 'no answer'}`);
    this.ready = true;
  }

  read(path: string, names: readonly string[], timeoutMs: number): Hdf5Attributes {
    this.waitReady();
    this.port.postMessage({ path, names });
    const m = this.answer(timeoutMs);
    if (!m) throw new Hdf5TimeoutError(`HDF5 reader gave no answer within ${timeoutMs} ms`);
    if (m.fatal) throw new Hdf5FatalError(hdf5Message(String(m.error)));
    if (!m.ok) throw new Error(hdf5Message(String(m.error)));
    return m.result as Hdf5Attributes;
  }

  end(): void {
    void this.worker.terminate();
    this.port.close();
  }
}

// The thread in use, and a spare that starts loading as soon as the first is needed, so that
// ending a stuck thread does not make the next file wait for the library to load again.
let thread: Hdf5Thread | undefined;
let spare: Hdf5Thread | undefined;

function current(): Hdf5Thread {
  if (!thread) {
    thread = spare ?? new Hdf5Thread();
    spare = undefined;
  }
  spare ??= new Hdf5Thread();
  return thread;
}

/**
 * Starts the HDF5 reader and waits until it is loaded. Optional: the first HDF5 file a scan
 * meets does the same; callers that time each file (the fuzzer) call it first.
 */
export function loadHdf5(): void {
  current().waitReady();
}

/**
 * Reads string attributes of the root group. Throws when the file is not readable HDF5, and
 * Hdf5TimeoutError when the library does not answer in `timeoutMs`. After a time-out or an
 * abort inside the library the thread is ended and the spare serves the next file.
 */
export function readRootAttributes(
  path: string,
  names: readonly string[],
  timeoutMs: number,
): Hdf5Attributes {
  const t = current();
  try {
    return t.read(path, names, timeoutMs);
  } catch (e) {
    if (e instanceof Hdf5TimeoutError || e instanceof Hdf5FatalError) {
      t.end();
      thread = undefined;
    }
    throw e;
  }
}

/** HDF5 errors come as a multi-line stack: the deepest "minor" line says what was wrong. */
function hdf5Message(raw: string): string {
  const lines = raw
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  const minor = lines.filter((l) => l.startsWith('minor:')).pop();
  return minor ? `HDF5: ${minor.slice(6).trim()}` : (lines[0] ?? 'HDF5 error');
}
