// Structured logs: one JSON object per line, or a short human line when stderr is a terminal.

export type Level = 'debug' | 'info' | 'warn' | 'error';
const order: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

const threshold = order[(process.env.TRELLIS_LOG_LEVEL as Level) ?? 'info'] ?? order.info;
const human = process.stderr.isTTY && process.env.TRELLIS_LOG_FORMAT !== 'json';

/** Drops everything: for simulations and tests, where the proxy's log is not the point. */
export const SILENT: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child: () => SILENT,
};

export function createLogger(base: Record<string, unknown> = {}): Logger {
  const emit = (level: Level, msg: string, fields?: Record<string, unknown>) => {
    if (order[level] < threshold) return;
    const rec = { time: new Date().toISOString(), level, msg, ...base, ...fields };
    if (human) {
      const extra = { ...base, ...fields };
      const tail = Object.keys(extra).length ? ` ${JSON.stringify(extra)}` : '';
      process.stderr.write(`${level.toUpperCase().padEnd(5)} ${msg}${tail}\n`);
    } else {
      process.stderr.write(`${JSON.stringify(rec)}\n`);
    }
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (fields) => createLogger({ ...base, ...fields }),
  };
}
