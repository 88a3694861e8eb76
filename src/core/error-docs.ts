import { ERROR_CATALOG } from './errors.js';

/** Renders docs/errors.md from the error catalog. */
export function renderErrorDocs(): string {
  const rows = Object.entries(ERROR_CATALOG).map(
    ([code, spec]) =>
      `| \`${code}\` | ${spec.status} | ${spec.description.replace(/\|/g, '\\|')} |`,
  );
  return `# Errors

<!-- Generated from src/core/errors.ts by \`npm run docs:errors\`; do not edit by hand. -->

Every error response of the API has the body

\`\`\`json
{ "code": "MODEL_NOT_FOUND", "message": "model fraud-detector not found", "details": { "model": "fraud-detector" } }
\`\`\`

\`code\` is stable: match on it, never on \`message\`. \`details\` is optional and its fields depend
on the code. The CLI prints \`error: CODE: message\` and exits 1 for a 4xx answer, 2 otherwise.

| Code | HTTP status | Meaning |
|---|---|---|
${rows.join('\n')}
`;
}
