import { SEVERITIES } from '../../core/findings.js';
import type { Evaluator, EvaluatorInput, EvaluatorResult } from '../evaluator.js';
import { SCANNER_VERSION, type ScanReport } from './scanner.js';
import { spawnThread } from './thread.js';

/** The built-in model-file scanner as an evaluator; each run is a worker thread. */
export class ArtifactScanEvaluator implements Evaluator {
  readonly id = 'artifact-scan';
  readonly version = SCANNER_VERSION;
  readonly description =
    'Static scan of model files for code-execution payloads (pickle, PyTorch, joblib, NumPy, Keras, TensorFlow, ONNX, safetensors, GGUF, archives)';

  accepts(): boolean {
    return true;
  }

  run(input: EvaluatorInput): Promise<EvaluatorResult> {
    const started = performance.now();
    const worker = spawnThread('scan-thread', import.meta.url, { workerData: input.files });
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        void worker.terminate();
        reject(new Error('evaluation aborted'));
      };
      input.signal.addEventListener('abort', onAbort, { once: true });
      worker.on(
        'message',
        (
          m: { progress: number } | { ok: true; report: ScanReport } | { ok: false; error: string },
        ) => {
          if ('progress' in m) {
            input.progress(m.progress);
            return;
          }
          input.signal.removeEventListener('abort', onAbort);
          void worker.terminate();
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
        },
      );
      worker.once('error', (e) => {
        input.signal.removeEventListener('abort', onAbort);
        reject(e);
      });
    });
  }
}
