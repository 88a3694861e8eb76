import type { Worker } from 'node:worker_threads';
import { SEVERITIES } from '../../core/findings.js';
import { spawnThread } from '../../core/threads.js';
import type { Evaluator, EvaluatorInput, EvaluatorResult } from '../evaluator.js';
import { SCANNER_VERSION, type ScanReport } from './scanner.js';

/** Scans one thread runs before it is replaced, so that nothing a scan left behind piles up. */
const SCANS_PER_THREAD = 200;

type ThreadMessage = { id: number } & (
  | { progress: number }
  | { ok: true; report: ScanReport }
  | { ok: false; error: string }
);

/**
 * The built-in model-file scanner as an evaluator. Scans run in a worker thread that is kept
 * between scans (starting one costs about 60 ms, far more than scanning a small file); an
 * aborted scan, or a thread that fails, is ended and the next scan starts a fresh one.
 */
export class ArtifactScanEvaluator implements Evaluator {
  readonly id = 'artifact-scan';
  readonly version = SCANNER_VERSION;
  readonly description =
    'Static scan of model files for code-execution payloads (pickle, PyTorch, joblib, NumPy, Keras, TensorFlow, ONNX, safetensors, GGUF, archives)';

  private thread: { worker: Worker; scans: number } | undefined;
  private nextId = 0;
  /** Scans run one after another in the thread: each waits for the one before. */
  private queue: Promise<unknown> = Promise.resolve();

  accepts(): boolean {
    return true;
  }

  private worker(): Worker {
    if (this.thread && this.thread.scans < SCANS_PER_THREAD) {
      this.thread.scans++;
      return this.thread.worker;
    }
    this.retire();
    const worker = spawnThread('scan-thread', import.meta.url, {});
    // An idle scan thread does not keep the process alive.
    worker.unref();
    const thread = { worker, scans: 1 };
    const forget = () => {
      if (this.thread === thread) this.thread = undefined;
    };
    worker.once('exit', forget);
    worker.once('error', forget);
    this.thread = thread;
    return worker;
  }

  /** Ends the scan thread (the next scan would start another). */
  async close(): Promise<void> {
    await this.queue;
    this.retire();
  }

  private retire(): void {
    if (this.thread) void this.thread.worker.terminate();
    this.thread = undefined;
  }

  run(input: EvaluatorInput): Promise<EvaluatorResult> {
    const result = this.queue.then(() => this.scan(input));
    this.queue = result.catch(() => {});
    return result;
  }

  private scan(input: EvaluatorInput): Promise<EvaluatorResult> {
    const started = performance.now();
    if (input.signal.aborted) return Promise.reject(new Error('evaluation aborted'));
    const worker = this.worker();
    const id = ++this.nextId;
    return new Promise((resolve, reject) => {
      const done = () => {
        input.signal.removeEventListener('abort', onAbort);
        worker.off('message', onMessage);
        worker.off('error', onError);
        worker.off('exit', onExit);
      };
      const onAbort = () => {
        done();
        // The thread may be deep in a file: end it; the next scan gets a new one.
        this.retire();
        reject(new Error('evaluation aborted'));
      };
      const onError = (e: Error) => {
        done();
        reject(e);
      };
      const onExit = (code: number) => {
        done();
        reject(new Error(`scan thread exited (code ${code})`));
      };
      const onMessage = (m: ThreadMessage) => {
        if (m.id !== id) return;
        if ('progress' in m) {
          input.progress(m.progress);
          return;
        }
        done();
        if (!m.ok) return reject(new Error(m.error));
        const metrics: Record<string, number> = {
          files: m.report.files.length,
          bytes: m.report.files.reduce((s, f) => s + f.size, 0),
          durationMs: Math.round(performance.now() - started),
          findings: m.report.findings.length,
        };
        for (const s of SEVERITIES)
          metrics[s] = m.report.findings.filter((f) => f.severity === s).length;
        input.progress(1);
        resolve({ findings: m.report.findings, metrics });
      };
      input.signal.addEventListener('abort', onAbort, { once: true });
      worker.on('message', onMessage);
      worker.on('error', onError);
      worker.on('exit', onExit);
      worker.postMessage({ id, files: input.files });
    });
  }
}
