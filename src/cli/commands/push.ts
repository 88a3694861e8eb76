import { readFileSync } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { basename, extname, join, relative, sep } from 'node:path';
import type { Command } from 'commander';
import { parse as parseYaml } from 'yaml';
import { jsonTooDeep, MAX_JSON_DEPTH } from '../../core/json-depth.js';
import type { LineageTarget, ModelCard, Version } from '../../core/types.js';
import type { ApiClient } from '../client.js';
import type { CliContext } from '../context.js';
import { seg, splitRef } from '../context.js';
import { CliError } from '../errors.js';
import { bytes, Progress } from '../output.js';

// Not part of a model, as in OpenSSF model signing's defaults.
const IGNORED = new Set(['.git', '.github', '.gitattributes', '.gitignore']);

/** A local file to upload: path on disk, path in the version, size. */
interface LocalFile {
  abs: string;
  rel: string;
  size: number;
}

/** Lists a file, or a folder's regular files recursively. Symlinks are refused, not followed. */
export async function collectFiles(path: string): Promise<LocalFile[]> {
  const st = await lstat(path).catch((e: NodeJS.ErrnoException) => {
    throw new CliError(
      `cannot read ${path}: ${e.code === 'ENOENT' ? 'no such file or folder' : e.message}`,
      2,
    );
  });
  if (st.isSymbolicLink())
    throw new CliError(`${path} is a symbolic link; push the real file or folder`, 2);
  // Names are stored in NFC (the registry refuses others); macOS file systems may give NFD.
  if (st.isFile()) return [{ abs: path, rel: basename(path).normalize('NFC'), size: st.size }];
  if (!st.isDirectory()) throw new CliError(`${path} is neither a file nor a folder`, 2);
  const out: LocalFile[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      if (IGNORED.has(e.name)) continue;
      const abs = join(dir, e.name);
      if (e.isSymbolicLink())
        throw new CliError(`${abs} is a symbolic link; model versions hold regular files only`, 2);
      if (e.isDirectory()) await walk(abs);
      else if (e.isFile())
        out.push({
          abs,
          rel: relative(path, abs).split(sep).join('/').normalize('NFC'),
          size: (await lstat(abs)).size,
        });
      else throw new CliError(`${abs} is not a regular file`, 2);
    }
  };
  await walk(path);
  if (out.length === 0) throw new CliError(`${path} has no files to push`, 2);
  return out;
}

/** Reads a model card: Markdown (optional YAML front matter = fields), JSON or YAML (fields, or {markdown, fields}). */
export function readCard(file: string): ModelCard {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new CliError(`cannot read card ${file}: ${(e as Error).message}`, 2);
  }
  const ext = extname(file).toLowerCase();
  try {
    if (ext === '.md' || ext === '.markdown') {
      const m = /^---\r?\n([\s\S]*?)\r?\n---\r?\n?([\s\S]*)$/.exec(text);
      if (!m) return { markdown: text, fields: {} };
      return {
        markdown: m[2] ?? '',
        fields: (parseYaml(m[1] ?? '') ?? {}) as Record<string, unknown>,
      };
    }
    const data = (ext === '.json' ? JSON.parse(text) : parseYaml(text)) as Record<string, unknown>;
    if (jsonTooDeep(data))
      throw new Error(`nests deeper than ${MAX_JSON_DEPTH} levels (the server's limit)`);
    if (data && typeof data === 'object' && ('markdown' in data || 'fields' in data)) {
      return {
        markdown: String(data.markdown ?? ''),
        fields: (data.fields ?? {}) as Record<string, unknown>,
      };
    }
    return { markdown: '', fields: data ?? {} };
  } catch (e) {
    throw new CliError(
      `card ${file} is not valid ${ext.slice(1) || 'text'}: ${(e as Error).message}`,
      2,
    );
  }
}

/** Parses `[relation=]dataset:NAME | version:MODEL@N | run:URI | code:URI`. */
export async function parseLineage(
  spec: string,
  client: () => ApiClient,
): Promise<{ relation?: string; target: LineageTarget }> {
  const m = /^(?:([A-Za-z][A-Za-z0-9]*)=)?(dataset|version|run|code):(.+)$/.exec(spec);
  if (!m) {
    throw new CliError(
      `bad --lineage ${JSON.stringify(spec)}: use dataset:NAME, version:MODEL@N, run:URI or code:URI, optionally prefixed by RELATION= (e.g. evaluatedOn=dataset:holdout)`,
      2,
    );
  }
  const [, relation, kind, ref] = m as unknown as [string, string | undefined, string, string];
  const rel = relation ? { relation } : {};
  if (kind === 'dataset') return { ...rel, target: { kind, dataset: ref } };
  if (kind === 'version') {
    const { model, ref: vref } = splitRef(ref);
    let version = Number(vref);
    if (!/^[0-9]+$/.test(vref ?? '')) {
      version = (
        await client().request<Version>(
          'GET',
          `/api/v1/models/${seg(model)}/versions/${seg(vref ?? '')}`,
        )
      ).number;
    }
    return { ...rel, target: { kind, model, version } };
  }
  return { ...rel, target: { kind: kind as 'run' | 'code', uri: ref } };
}

/** `modelgate push`: uploads a file or folder and registers it as the next version of a model. */
export function registerPush(program: Command, ctx: CliContext): void {
  program
    .command('push <path>')
    .description(
      'upload a file or a folder of files and register it as the next version of a model',
    )
    .requiredOption('--model <name>', 'the model to add the version to')
    .option(
      '--lineage <spec...>',
      'what went into it: dataset:NAME, version:MODEL@N, run:URI, code:URI; prefix RELATION= to name the relation',
    )
    .option(
      '--source <uri>',
      'where the artefact came from (e.g. an object-store or training-job URI)',
    )
    .option(
      '--card <file>',
      'model card: .md (YAML front matter for structured fields), .json or .yaml',
    )
    .option('--tag <tag...>', 'version tags')
    .option('--description <text>', 'a line about this version')
    .option(
      '--no-verify',
      "skip hashing each file locally to check the server's digest (faster on small machines)",
    )
    .addHelpText(
      'after',
      `
Examples:
  modelgate push ./model.safetensors --model fraud-detector --lineage dataset:transactions-2026q3
  modelgate push ./checkpoint/ --model fraud-detector --lineage version:fraud-base@3 --card CARD.md

A single file is stored under its file name; a folder keeps its relative paths.
.git, .github, .gitattributes and .gitignore are skipped; symbolic links are refused.`,
    )
    .action(
      async (
        path: string,
        o: Record<string, string | string[] | boolean | undefined>,
        cmd: Command,
      ) => {
        const client = ctx.client();
        const files = await collectFiles(path);
        const card = o.card ? readCard(o.card as string) : undefined;
        const lineage = [];
        for (const spec of (o.lineage as string[] | undefined) ?? []) {
          lineage.push(await parseLineage(spec, () => client));
        }
        const total = files.reduce((s, f) => s + f.size, 0);
        const progress = new Progress(total, '');
        const uploaded = [];
        const started = Date.now();
        for (const f of files) {
          progress.setLabel(f.rel);
          const r = await client.uploadFile(
            f.abs,
            f.size,
            (n) => progress.add(n),
            o.verify !== false,
          );
          uploaded.push({ path: f.rel, size: r.size, digest: r.digest });
        }
        progress.finish();
        const v = await client.request<Version>(
          'POST',
          `/api/v1/models/${seg(o.model as string)}/versions`,
          {
            files: uploaded,
            ...(o.source !== undefined && { sourceUri: o.source }),
            ...(card && { card }),
            ...(o.tag !== undefined && { tags: o.tag }),
            ...(o.description !== undefined && { description: o.description }),
            ...(lineage.length > 0 && { lineage }),
          },
        );
        const secs = (Date.now() - started) / 1000;
        ctx.print(
          cmd,
          v,
          () =>
            `pushed ${v.model}@${v.number} ${v.digest}\n${v.fileCount} file(s), ${bytes(v.size)} in ${secs.toFixed(1)} s`,
        );
      },
    );
}
