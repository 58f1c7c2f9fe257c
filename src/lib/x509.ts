// @peculiar/x509 resolves its algorithm providers through tsyringe, which needs the Reflect metadata
// API loaded first; the dynamic import guarantees that order. Shared by the CA and the proxy's CSRs.
import 'reflect-metadata';

export const x509: typeof import('@peculiar/x509') = await import('@peculiar/x509');
