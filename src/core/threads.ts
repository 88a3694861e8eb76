import { Worker, type WorkerOptions } from 'node:worker_threads';

/**
 * Starts a worker thread running the module `name` that sits beside `base` (an import.meta.url).
 * In the built server that is the compiled .js; under tsx or vitest it is the .ts source, and
 * tsx's loader is registered in the new thread first (loader hooks are per thread).
 */
export function spawnThread(name: string, base: string, options: WorkerOptions): Worker {
  const fromSource = base.endsWith('.ts');
  const url = new URL(`./${name}.${fromSource ? 'ts' : 'js'}`, base);
  return fromSource
    ? new Worker(
        `import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(url.href)}); })`,
        { ...options, eval: true },
      )
    : new Worker(url, options);
}
