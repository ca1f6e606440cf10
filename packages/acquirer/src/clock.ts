/**
 * Time at the POSP. "Signed in today" is the POSP's local calendar date, so the clock and the zone are
 * injectable (tests move the day forward; a host in Beijing sets +480).
 */

/** The clock the POSP reads: `Date.now()` by default. */
export type Clock = () => Date;

export const systemClock: Clock = () => new Date();

export interface LocalTime {
  /** YYYYMMDD */
  date: string;
  /** MMDD */
  mmdd: string;
  /** hhmmss */
  time: string;
}

const p2 = (n: number): string => String(n).padStart(2, '0');

/**
 * The local date and time of `at`: in the zone `offsetMinutes` east of UTC when given, else in the
 * process's local zone.
 */
export function localTimeOf(at: Date, offsetMinutes?: number): LocalTime {
  let y: number;
  let mo: number;
  let d: number;
  let h: number;
  let mi: number;
  let s: number;
  if (offsetMinutes === undefined) {
    [y, mo, d, h, mi, s] = [
      at.getFullYear(),
      at.getMonth() + 1,
      at.getDate(),
      at.getHours(),
      at.getMinutes(),
      at.getSeconds(),
    ];
  } else {
    const t = new Date(at.getTime() + offsetMinutes * 60_000);
    [y, mo, d, h, mi, s] = [
      t.getUTCFullYear(),
      t.getUTCMonth() + 1,
      t.getUTCDate(),
      t.getUTCHours(),
      t.getUTCMinutes(),
      t.getUTCSeconds(),
    ];
  }
  return { date: `${y}${p2(mo)}${p2(d)}`, mmdd: `${p2(mo)}${p2(d)}`, time: `${p2(h)}${p2(mi)}${p2(s)}` };
}

/** ISO 8583 field 7, transmission date and time MMDDhhmmss in UTC (ISO 8583:1987 field 7). */
export function transmissionDateTimeOf(at: Date): string {
  return `${p2(at.getUTCMonth() + 1)}${p2(at.getUTCDate())}${p2(at.getUTCHours())}${p2(at.getUTCMinutes())}${p2(at.getUTCSeconds())}`;
}

/** True when MMDD is a calendar day (29 February accepted: the year is not known here). */
export function isValidMmdd(mmdd: string): boolean {
  if (!/^\d{4}$/.test(mmdd)) return false;
  const m = Number(mmdd.slice(0, 2));
  const d = Number(mmdd.slice(2));
  const days = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
  return m >= 1 && m <= 12 && d >= 1 && d <= days[m - 1]!;
}

/**
 * The full date YYYYMMDD of a terminal's MMDD (field 13): the year that puts it nearest to the POSP's
 * own local date, so a 1231 request that arrives just after midnight on 1 January is last year's.
 */
export function resolveMmdd(mmdd: string, posLocalDate: string): string {
  const y = Number(posLocalDate.slice(0, 4));
  const today = Date.UTC(y, Number(posLocalDate.slice(4, 6)) - 1, Number(posLocalDate.slice(6, 8)));
  let best = '';
  let bestDist = Number.POSITIVE_INFINITY;
  for (const cand of [y - 1, y, y + 1]) {
    const t = Date.UTC(cand, Number(mmdd.slice(0, 2)) - 1, Number(mmdd.slice(2, 4)));
    const dist = Math.abs(t - today);
    if (dist < bestDist) {
      bestDist = dist;
      best = `${cand}${mmdd}`;
    }
  }
  return best;
}
