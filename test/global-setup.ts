import type { TestProject } from 'vitest/node';
import { createTemplate, dropDatabase } from '../src/storage/test-databases.js';

declare module 'vitest' {
  export interface ProvidedContext {
    pgAdminUrl: string;
    pgTemplate: string;
  }
}

/** Once per run: a migrated PostgreSQL template when MODELGATE_TEST_DATABASE_URL is set. */
export default async function setup(project: TestProject) {
  const url = process.env.MODELGATE_TEST_DATABASE_URL;
  if (!url) {
    project.provide('pgAdminUrl', '');
    project.provide('pgTemplate', '');
    return;
  }
  const template = await createTemplate(url);
  project.provide('pgAdminUrl', url);
  project.provide('pgTemplate', template);
  return async () => {
    await dropDatabase(url, template);
  };
}
