import { readFileSync } from 'node:fs';

/** The version in package.json: the one version the CLI, proxies and control plane report. */
export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}
