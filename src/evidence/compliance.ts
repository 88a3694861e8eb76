import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The evidence-type codes controls are mapped to (docs: the catalog's `evidenceTypes`). */
export const EVIDENCE_CODES = [
  'INV',
  'LIN',
  'EVAL',
  'SEC',
  'APR',
  'POL',
  'LOG',
  'RISK',
  'MON',
  'DOC',
  'CHG',
  'DEC',
] as const;
export type EvidenceCode = (typeof EVIDENCE_CODES)[number];

/** One control of a framework: what evidence types serve it and how much the registry can. */
export interface Control {
  id: string;
  title: string;
  /** full: the registry is a primary source; partial: supporting records; org: organisational. */
  support: 'full' | 'partial' | 'org';
  evidence: EvidenceCode[];
  note?: string;
}

export interface Framework {
  id: string;
  title: string;
  source: string;
  controls: Control[];
}

/** The control catalog, as data (catalog/controls.json), extendable by operators. */
export interface ControlCatalog {
  version: number;
  note: string;
  evidenceTypes: Record<string, string>;
  frameworks: Framework[];
}

function invalid(file: string, why: string): never {
  throw new Error(`control catalog ${file}: ${why}`);
}

function checkFramework(f: unknown, file: string): Framework {
  const x = f as Framework;
  if (typeof x?.id !== 'string' || typeof x.title !== 'string' || !Array.isArray(x.controls))
    invalid(file, 'each framework needs an id, a title and a list of controls');
  for (const c of x.controls) {
    if (typeof c?.id !== 'string' || typeof c.title !== 'string')
      invalid(file, `a control of ${x.id} lacks an id or title`);
    if (!['full', 'partial', 'org'].includes(c.support))
      invalid(file, `${x.id} ${c.id}: support must be full, partial or org`);
    if (!Array.isArray(c.evidence) || c.evidence.some((e) => !EVIDENCE_CODES.includes(e)))
      invalid(file, `${x.id} ${c.id}: evidence must list codes of ${EVIDENCE_CODES.join(', ')}`);
  }
  return { id: x.id, title: x.title, source: String(x.source ?? ''), controls: x.controls };
}

/**
 * The shipped catalog (NIST AI RMF 1.0, ISO/IEC 42001 Annex A, EU AI Act, NIST CSF 2.0), with
 * an operator's file merged in: its frameworks are added, and its controls replace or extend
 * those of a framework with the same id.
 */
export function loadCatalog(extraFile?: string): ControlCatalog {
  const file = fileURLToPath(new URL('../../catalog/controls.json', import.meta.url));
  const base = JSON.parse(readFileSync(file, 'utf8')) as ControlCatalog;
  base.frameworks = base.frameworks.map((f) => checkFramework(f, file));
  if (!extraFile) return base;
  let extra: { frameworks?: unknown[] };
  try {
    extra = JSON.parse(readFileSync(extraFile, 'utf8'));
  } catch (e) {
    invalid(extraFile, (e as Error).message);
  }
  if (!Array.isArray(extra.frameworks)) invalid(extraFile, 'needs a "frameworks" list');
  for (const raw of extra.frameworks) {
    const f = checkFramework(raw, extraFile);
    const known = base.frameworks.find((x) => x.id === f.id);
    if (!known) {
      base.frameworks.push(f);
      continue;
    }
    for (const c of f.controls) {
      const i = known.controls.findIndex((x) => x.id === c.id);
      if (i >= 0) known.controls[i] = c;
      else known.controls.push(c);
    }
  }
  return base;
}

/** Where a piece of evidence is: a signed attestation, a registry record, or the audit log. */
export interface EvidenceRef {
  kind: 'attestation' | 'record' | 'log';
  id: string;
  label: string;
}

/** What the record holds of one evidence type for a version. */
export interface EvidenceItem {
  code: EvidenceCode;
  present: boolean;
  refs: EvidenceRef[];
  /** What it is, or why it is missing. */
  detail: string;
}

/** The facts evidence is read from: the version, its attestations (decoded), its card. */
export interface EvidenceInput {
  model: { name: string; ownerTeam: string; riskTier: string };
  version: { number: number; digest: string; cardFields: Record<string, unknown> };
  attestations: {
    id: number;
    kind: string;
    ref: string;
    predicateType: string;
    predicate: Record<string, unknown>;
  }[];
  /** Evaluator id of each evaluation (by evaluation id). */
  evaluators: Record<string, string>;
  lineageEdges: number;
  checkpoint: { size: number } | undefined;
}

const filled = (v: unknown) => typeof v === 'string' && v.trim() !== '';

/** Reads each evidence type off a version's record. */
export function evidenceOf(input: EvidenceInput): Record<EvidenceCode, EvidenceItem> {
  const att = (kind: string, label: (a: EvidenceInput['attestations'][number]) => string) =>
    input.attestations
      .filter((a) => a.kind === kind)
      .map((a): EvidenceRef => ({ kind: 'attestation', id: String(a.id), label: label(a) }));
  const item = (
    code: EvidenceCode,
    refs: EvidenceRef[],
    yes: string,
    no: string,
  ): EvidenceItem => ({
    code,
    present: refs.length > 0,
    refs,
    detail: refs.length > 0 ? yes : no,
  });
  const m = input.model;
  const v = input.version;
  const evaluations = [
    ...att(
      'evaluation',
      (a) => `${input.evaluators[a.ref] ?? 'evaluation'} ${a.ref}: ${a.predicate.result}`,
    ),
    ...att(
      'external',
      (a) => `external ${a.ref.split('/')[0]}: ${a.predicate.result ?? a.predicateType}`,
    ),
  ];
  const security = evaluations.filter((r) => {
    const a = input.attestations.find((x) => String(x.id) === r.id);
    return a !== undefined && input.evaluators[a.ref] === 'artifact-scan';
  });
  const approvals = att(
    'approval',
    (a) => `${a.predicate.decision} by ${a.predicate.reviewer}`,
  ).filter((r) => r.label.startsWith('approve '));
  const card = ['intendedUse', 'limitations'].filter((k) => filled(v.cardFields[k]));
  return {
    INV: item(
      'INV',
      [
        {
          kind: 'record',
          id: `model:${m.name}`,
          label: `owner ${m.ownerTeam}, risk tier ${m.riskTier}`,
        },
      ],
      'the model record: owner team and risk tier',
      '',
    ),
    LIN: item(
      'LIN',
      input.lineageEdges > 0
        ? att('provenance', () => `${input.lineageEdges} lineage edge(s)`)
        : [],
      'signed provenance with the version\u2019s lineage',
      'no lineage recorded for this version',
    ),
    EVAL: item('EVAL', evaluations, 'signed evaluation results', 'no evaluation of this version'),
    SEC: item('SEC', security, 'signed artifact scan results', 'no security scan of this version'),
    APR: item('APR', approvals, 'signed approvals', 'no approval of this version'),
    POL: item(
      'POL',
      att(
        'decision',
        (a) => `decision ${a.ref}: ${(a.predicate.modelgate as { outcome?: string })?.outcome}`,
      ),
      'signed gate decisions with policy versions',
      'no gate decision about this version',
    ),
    LOG: item(
      'LOG',
      input.checkpoint
        ? [
            {
              kind: 'log',
              id: `checkpoint:${input.checkpoint.size}`,
              label: `audit log of ${input.checkpoint.size} events`,
            },
          ]
        : [],
      'every change and attestation is in the tamper-evident audit log',
      'the audit log has no signed checkpoint yet',
    ),
    RISK: item(
      'RISK',
      att('waiver', (a) => `waiver ${a.ref}: ${a.predicate.findingRule ?? a.predicate.rule}`),
      'signed risk acceptances (waivers) with justification and expiry',
      'no risk acceptance recorded',
    ),
    MON: item('MON', [], '', 'post-deployment monitoring is not recorded by Modelgate yet'),
    DOC: item(
      'DOC',
      card.length === 2
        ? [
            {
              kind: 'record',
              id: `version:${m.name}@${v.number}`,
              label: 'model card (intended use, limitations)',
            },
          ]
        : [],
      'the version\u2019s model card',
      `the model card lacks ${['intendedUse', 'limitations'].filter((k) => !card.includes(k)).join(' and ')}`,
    ),
    CHG: item(
      'CHG',
      [
        {
          kind: 'record',
          id: `version:${m.name}@${v.number}`,
          label: `immutable version ${v.number} (${v.digest})`,
        },
      ],
      'immutable, digest-addressed versions with their history',
      '',
    ),
    DEC: item('DEC', [], '', 'no deprecation or revocation record'),
  };
}

/** One control's row: what of its evidence the record holds. Never a statement of compliance. */
export interface ControlRow {
  id: string;
  title: string;
  support: Control['support'];
  /** evidence-present: every mapped type is present; partial: some; missing: none. */
  status: 'evidence-present' | 'partial' | 'missing' | 'organisational';
  evidence: { code: EvidenceCode; present: boolean; refs: EvidenceRef[] }[];
}

export interface ComplianceReport {
  subject: { model: string; version: number; digest: string };
  generatedAt: string;
  note: string;
  evidence: EvidenceItem[];
  frameworks: {
    id: string;
    title: string;
    source: string;
    coverage: Record<ControlRow['status'], number>;
    rows: ControlRow[];
  }[];
}

/** The named frameworks of the catalog (all when none is named); throws for an unknown one. */
function selectFrameworks(catalog: ControlCatalog, wanted: string[] | undefined): Framework[] {
  if (!wanted || wanted.length === 0) return catalog.frameworks;
  for (const id of wanted)
    if (!catalog.frameworks.some((f) => f.id === id))
      throw new Error(
        `unknown framework ${id}; the catalog has ${catalog.frameworks.map((f) => f.id).join(', ')}`,
      );
  return catalog.frameworks.filter((f) => wanted.includes(f.id));
}

/** Maps a version's evidence onto the catalog's controls (or only the named frameworks). */
export function complianceReport(
  catalog: ControlCatalog,
  subject: ComplianceReport['subject'],
  evidence: Record<EvidenceCode, EvidenceItem>,
  opts: { frameworks?: string[]; now: Date },
): ComplianceReport {
  const frameworks = selectFrameworks(catalog, opts.frameworks);
  return {
    subject,
    generatedAt: opts.now.toISOString(),
    note: catalog.note,
    evidence: EVIDENCE_CODES.map((c) => evidence[c]),
    frameworks: frameworks.map((f) => {
      const rows = f.controls.map((c): ControlRow => {
        const ev = c.evidence.map((code) => ({
          code,
          present: evidence[code].present,
          refs: evidence[code].refs,
        }));
        const present = ev.filter((e) => e.present).length;
        const status: ControlRow['status'] =
          c.support === 'org' || ev.length === 0
            ? 'organisational'
            : present === ev.length
              ? 'evidence-present'
              : present > 0
                ? 'partial'
                : 'missing';
        return { id: c.id, title: c.title, support: c.support, status, evidence: ev };
      });
      const coverage = { 'evidence-present': 0, partial: 0, missing: 0, organisational: 0 };
      for (const r of rows) coverage[r.status]++;
      return { id: f.id, title: f.title, source: f.source, coverage, rows };
    }),
  };
}

const STATUS_TEXT: Record<ControlRow['status'], string> = {
  'evidence-present': 'evidence present',
  partial: 'partial evidence',
  missing: 'evidence missing',
  organisational: 'organisational evidence required',
};

const refText = (r: EvidenceRef) =>
  r.kind === 'attestation' ? `attestation ${r.id}` : r.kind === 'log' ? r.id : r.id;

/** The report as Markdown: one table per framework. */
export function reportMarkdown(r: ComplianceReport): string {
  const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
  const out = [
    `# Evidence coverage: ${r.subject.model}@${r.subject.version}`,
    '',
    `Version digest \`${r.subject.digest}\`, generated ${r.generatedAt}.`,
    '',
    `> ${r.note} This report shows coverage and gaps; it does not say any control is met.`,
    '',
  ];
  for (const f of r.frameworks) {
    const c = f.coverage;
    out.push(
      `## ${f.title}`,
      '',
      `${c['evidence-present']} with evidence present, ${c.partial} partial, ${c.missing} missing, ${c.organisational} needing organisational evidence.`,
      '',
      '| Control | Title | Status | Evidence |',
      '|---|---|---|---|',
      ...f.rows.map(
        (row) =>
          `| ${cell(row.id)} | ${cell(row.title)} | ${STATUS_TEXT[row.status]} | ${cell(
            row.evidence
              .map((e) => `${e.code}: ${e.present ? e.refs.map(refText).join(', ') : 'missing'}`)
              .join('; ') || '-',
          )} |`,
      ),
      '',
    );
  }
  out.push('## Evidence', '');
  for (const e of r.evidence)
    out.push(
      `- **${e.code}** ${e.present ? 'present' : 'missing'}: ${e.detail}${e.refs.length ? ` (${e.refs.map((x) => `${refText(x)}: ${x.label}`).join('; ')})` : ''}`,
    );
  return `${out.join('\n')}\n`;
}

const esc = (s: string) =>
  s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');

/** The report as a self-contained, printable HTML page (no scripts, no external resources). */
export function reportHtml(r: ComplianceReport): string {
  const anchor = (x: EvidenceRef) => `ev-${x.kind}-${x.id.replace(/[^A-Za-z0-9_-]/g, '-')}`;
  const refs = new Map<string, EvidenceRef>();
  for (const e of r.evidence) for (const x of e.refs) refs.set(anchor(x), x);
  const sections = r.frameworks.map((f) => {
    const c = f.coverage;
    const rows = f.rows
      .map(
        (row) =>
          `<tr class="${row.status}"><td class="id">${esc(row.id)}</td><td>${esc(row.title)}</td><td class="status">${esc(STATUS_TEXT[row.status])}</td><td>${
            row.evidence
              .map(
                (e) =>
                  `<span class="code ${e.present ? 'yes' : 'no'}">${e.code}</span> ${
                    e.present
                      ? e.refs
                          .map((x) => `<a href="#${anchor(x)}">${esc(refText(x))}</a>`)
                          .join(', ')
                      : 'missing'
                  }`,
              )
              .join('<br>') || '&ndash;'
          }</td></tr>`,
      )
      .join('\n');
    return `<section><h2>${esc(f.title)}</h2>
<p class="summary">${c['evidence-present']} with evidence present &middot; ${c.partial} partial &middot; ${c.missing} missing &middot; ${c.organisational} need organisational evidence</p>
<table><thead><tr><th>Control</th><th>Title</th><th>Status</th><th>Evidence</th></tr></thead><tbody>
${rows}
</tbody></table></section>`;
  });
  const evidence = r.evidence
    .map(
      (e) =>
        `<li><strong>${e.code}</strong> ${e.present ? 'present' : 'missing'}: ${esc(e.detail)}${
          e.refs.length
            ? `<ul>${e.refs.map((x) => `<li id="${anchor(x)}">${esc(refText(x))}: ${esc(x.label)}</li>`).join('')}</ul>`
            : ''
        }</li>`,
    )
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Evidence coverage: ${esc(r.subject.model)}@${r.subject.version}</title>
<style>
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1d2433;margin:2rem auto;max-width:72rem;padding:0 1rem}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:2px solid #d8dde8;padding-bottom:.2rem}
.meta{color:#55607a}.note{background:#f4f6fb;border-left:4px solid #7d8bb0;padding:.6rem .8rem}
table{border-collapse:collapse;width:100%;margin-top:.5rem}th,td{border:1px solid #d8dde8;padding:.3rem .5rem;vertical-align:top;text-align:left}
th{background:#eef1f7}td.id{white-space:nowrap;font-family:ui-monospace,monospace}
tr.evidence-present td.status{color:#0b6b2e;font-weight:600}tr.partial td.status{color:#8a5a00;font-weight:600}
tr.missing td.status{color:#a11a1a;font-weight:600}tr.organisational td.status{color:#55607a}
.code{display:inline-block;font:11px ui-monospace,monospace;padding:0 .3rem;border-radius:3px}.code.yes{background:#dff3e6}.code.no{background:#f8e0e0}
a{color:#1f4fb8}@media print{body{margin:0;max-width:none}section{break-inside:auto}tr{break-inside:avoid}}
</style></head><body>
<h1>Evidence coverage: ${esc(r.subject.model)}@${r.subject.version}</h1>
<p class="meta">Version digest <code>${esc(r.subject.digest)}</code> &middot; generated ${esc(r.generatedAt)}</p>
<p class="note">${esc(r.note)} This report shows coverage and gaps; it does not say any control is met.</p>
${sections.join('\n')}
<section><h2>Evidence</h2><ul>
${evidence}
</ul></section>
</body></html>
`;
}

/** Coverage of every model of a portfolio, per framework, and the totals. */
export interface PortfolioReport {
  generatedAt: string;
  alias: string;
  note: string;
  frameworks: {
    id: string;
    title: string;
    totals: Record<ControlRow['status'], number>;
    models: {
      model: string;
      version: number;
      digest: string;
      coverage: Record<ControlRow['status'], number>;
      /** Controls without their evidence: what to work on first. */
      missing: string[];
    }[];
  }[];
}

/** Maps every model's evidence onto the catalog and sums the coverage. */
export function portfolioReport(
  catalog: ControlCatalog,
  inputs: EvidenceInput[],
  opts: { frameworks?: string[]; alias: string; now: Date },
): PortfolioReport {
  const per = inputs.map((i) =>
    complianceReport(
      catalog,
      { model: i.model.name, version: i.version.number, digest: i.version.digest },
      evidenceOf(i),
      { ...(opts.frameworks && { frameworks: opts.frameworks }), now: opts.now },
    ),
  );
  const frameworks = selectFrameworks(catalog, opts.frameworks).map((f, k) => {
    const totals = { 'evidence-present': 0, partial: 0, missing: 0, organisational: 0 };
    const models = per.map((r) => {
      const fw = r.frameworks[k]!;
      for (const [s, n] of Object.entries(fw.coverage)) totals[s as ControlRow['status']] += n;
      return {
        model: r.subject.model,
        version: r.subject.version,
        digest: r.subject.digest,
        coverage: fw.coverage,
        missing: fw.rows.filter((x) => x.status === 'missing').map((x) => x.id),
      };
    });
    return { id: f.id, title: f.title, totals, models };
  });
  return { generatedAt: opts.now.toISOString(), alias: opts.alias, note: catalog.note, frameworks };
}

/** The portfolio report as Markdown: per framework, one line per model. */
export function portfolioMarkdown(r: PortfolioReport): string {
  const out = [
    '# Evidence coverage across the portfolio',
    '',
    `Generated ${r.generatedAt}; each model's version under \`${r.alias}\`, else its latest.`,
    '',
    `> ${r.note}`,
    '',
  ];
  for (const f of r.frameworks) {
    const t = f.totals;
    out.push(
      `## ${f.title}`,
      '',
      `${t['evidence-present']} control rows with evidence present, ${t.partial} partial, ${t.missing} missing, ${t.organisational} organisational, over ${f.models.length} models.`,
      '',
      '| Model | Version | Present | Partial | Missing | Organisational |',
      '|---|---|---|---|---|---|',
      ...f.models.map(
        (m) =>
          `| ${m.model} | ${m.version} | ${m.coverage['evidence-present']} | ${m.coverage.partial} | ${m.coverage.missing} | ${m.coverage.organisational} |`,
      ),
      '',
    );
  }
  return `${out.join('\n')}\n`;
}
