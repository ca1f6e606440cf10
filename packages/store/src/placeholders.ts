/**
 * Portable SQL is written with `?` placeholders (SQLite's form); PostgreSQL numbers them `$1..$n`
 * (PostgreSQL 18 docs, 8.1.2 "Positional Parameters"). A `?` inside a string literal, a quoted
 * identifier, a comment or a dollar-quoted body is text, not a placeholder, so the scan skips those.
 */

/** The translation of one SQL text, and how many placeholders it had. */
export interface NumberedSql {
  text: string;
  count: number;
}

const DOLLAR_TAG = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/;

/** `?` -> `$1..$n` outside '...' (with '' escapes, and E'...' with backslash escapes), "...", -- and block comments, $tag$...$tag$. */
export function numberPlaceholders(sql: string): NumberedSql {
  let out = '';
  let count = 0;
  let i = 0;
  const n = sql.length;
  while (i < n) {
    const c = sql[i]!;
    if (c === '?') {
      out += `$${++count}`;
      i++;
      continue;
    }
    let end = i + 1;
    if (c === "'") {
      // E'...' allows backslash escapes (4.1.2.2); a plain '...' only doubles the quote.
      const escapes = i > 0 && (sql[i - 1] === 'E' || sql[i - 1] === 'e');
      while (end < n) {
        if (escapes && sql[end] === '\\') end += 2;
        else if (sql[end] === "'" && sql[end + 1] === "'") end += 2;
        else if (sql[end] === "'") {
          end++;
          break;
        } else end++;
      }
    } else if (c === '"') {
      while (end < n) {
        if (sql[end] === '"' && sql[end + 1] === '"') end += 2;
        else if (sql[end] === '"') {
          end++;
          break;
        } else end++;
      }
    } else if (c === '-' && sql[i + 1] === '-') {
      const nl = sql.indexOf('\n', i);
      end = nl < 0 ? n : nl;
    } else if (c === '/' && sql[i + 1] === '*') {
      const close = sql.indexOf('*/', i + 2);
      end = close < 0 ? n : close + 2;
    } else if (c === '$' && !/[A-Za-z0-9_$]/.test(sql[i - 1] ?? ' ')) {
      const tag = DOLLAR_TAG.exec(sql.slice(i, i + 64));
      if (tag) {
        const close = sql.indexOf(tag[0], i + tag[0].length);
        end = close < 0 ? n : close + tag[0].length;
      }
    }
    out += sql.slice(i, Math.min(end, n));
    i = end;
  }
  return { text: out, count };
}
