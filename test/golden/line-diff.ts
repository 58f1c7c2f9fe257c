// A line diff for golden failures: only the changed lines, with a little context and line numbers,
// so a one-field change in a 300-line snapshot reads as one hunk.

/** `-` lines are only in `a`, `+` lines only in `b`; hunks start with `@@ a-line,b-line`. */
export function lineDiff(a: string, b: string, context = 3): string {
  const x = a.split('\n');
  const y = b.split('\n');
  // Longest common subsequence, from the ends, so the walk below goes forward.
  const lcs: Uint32Array[] = Array.from({ length: x.length + 1 }, () => new Uint32Array(y.length + 1));
  for (let i = x.length - 1; i >= 0; i--)
    for (let j = y.length - 1; j >= 0; j--)
      lcs[i][j] = x[i] === y[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
  const ops: { op: ' ' | '-' | '+'; text: string; ai: number; bi: number }[] = [];
  let i = 0;
  let j = 0;
  while (i < x.length || j < y.length) {
    if (i < x.length && j < y.length && x[i] === y[j]) ops.push({ op: ' ', text: x[i++], ai: i, bi: ++j });
    else if (i < x.length && (j === y.length || lcs[i + 1][j] >= lcs[i][j + 1]))
      ops.push({ op: '-', text: x[i++], ai: i, bi: j });
    else ops.push({ op: '+', text: y[j++], ai: i, bi: j });
  }
  const out: string[] = [];
  let last = -1;
  ops.forEach((o, k) => {
    if (o.op === ' ') return;
    const from = Math.max(k - context, last + 1);
    if (from > last + 1) out.push(`@@ ${ops[from].ai},${ops[from].bi}`);
    for (let n = from; n < k; n++) out.push(`  ${ops[n].text}`);
    out.push(`${o.op} ${o.text}`);
    last = k;
    // Trailing context, unless the next change is close enough to share it.
    for (let n = k + 1; n < ops.length && n <= k + context && ops[n].op === ' '; n++) {
      const nextChange = ops.findIndex((p, m) => m > n && p.op !== ' ');
      if (nextChange !== -1 && nextChange - n <= context) break;
      out.push(`  ${ops[n].text}`);
      last = n;
    }
  });
  return out.join('\n');
}
