/**
 * Listing order: libipvs's ipvs_cmp_services/ipvs_cmp_dests run by glibc's
 * qsort (a top-down merge sort). The comparators subtract unsigned 32-bit
 * values and read the difference as a signed int, so they are not transitive
 * for values 2^31 or more apart (10.0.0.1 sorts after 192.168.0.1); the result
 * then depends on the exact merge order, which is why we run glibc's algorithm
 * rather than Array.prototype.sort.
 */
import type { DestEntry, ServiceEntry } from '../../ctl/types.js';
import { parseAddrText, type Words6 } from './libc.js';

const AF_INET = 2;
const AF_INET6 = 10;

/** glibc msort_with_tmp(): split n/2 | n - n/2, merge taking the left element when cmp <= 0. */
export function glibcMergeSort<T>(items: readonly T[], cmp: (a: T, b: T) => number): T[] {
  const a = items.slice();
  const tmp = new Array<T>(a.length);
  const sort = (lo: number, n: number): void => {
    if (n <= 1) return;
    const n1 = n >>> 1;
    const n2 = n - n1;
    sort(lo, n1);
    sort(lo + n1, n2);
    let i = lo;
    let j = lo + n1;
    let k = 0;
    let r1 = n1;
    let r2 = n2;
    while (r1 > 0 && r2 > 0) {
      if (cmp(a[i]!, a[j]!) <= 0) {
        tmp[k++] = a[i++]!;
        r1--;
      } else {
        tmp[k++] = a[j++]!;
        r2--;
      }
    }
    while (r1 > 0) {
      tmp[k++] = a[i++]!;
      r1--;
    }
    // Whatever is left of the right half is already in place.
    for (let m = 0; m < k; m++) a[lo + m] = tmp[m]!;
  };
  sort(0, a.length);
  return a;
}

/** (u32 a - u32 b) as a C int. */
function signedDiff(a: number, b: number): number {
  return ((a >>> 0) - (b >>> 0)) | 0;
}

function words(addr: string): Words6 {
  const p = parseAddrText(addr);
  return p === null ? [0, 0, 0, 0] : p.w;
}

/** The address comparison both comparators share: IPv6 word by word, IPv4 one word, chosen by the first element's family. */
function cmpAddr(af1: 4 | 6, a1: Words6, a2: Words6): number {
  if (af1 === 6) {
    let r = 0;
    for (let i = 0; r === 0 && i < 4; i++) r = signedDiff(a1[i]!, a2[i]!);
    return r;
  }
  return signedDiff(a1[0]!, a2[0]!);
}

interface SortKey<T> {
  item: T;
  w: Words6;
}

/** ipvs_cmp_services: fwmark, family, protocol, address, port. */
export function sortServices(list: readonly ServiceEntry[]): ServiceEntry[] {
  const keyed: SortKey<ServiceEntry>[] = list.map((s) => ({ item: s, w: words(s.addr) }));
  const afv = (af: 4 | 6) => (af === 6 ? AF_INET6 : AF_INET);
  const sorted = glibcMergeSort(keyed, (x, y) => {
    const s1 = x.item;
    const s2 = y.item;
    let r = signedDiff(s1.fwmark, s2.fwmark);
    if (r !== 0) return r;
    r = afv(s1.af) - afv(s2.af);
    if (r !== 0) return r;
    r = s1.protocol - s2.protocol;
    if (r !== 0) return r;
    r = cmpAddr(s1.af, x.w, y.w);
    if (r !== 0) return r;
    return s1.port - s2.port;
  });
  return sorted.map((k) => k.item);
}

/** ipvs_cmp_dests: address (by the first dest's family), then port. */
export function sortDests(list: readonly DestEntry[]): DestEntry[] {
  const keyed: SortKey<DestEntry>[] = list.map((d) => ({ item: d, w: words(d.addr) }));
  const sorted = glibcMergeSort(keyed, (x, y) => {
    const r = cmpAddr(x.item.af, x.w, y.w);
    if (r !== 0) return r;
    return x.item.port - y.item.port;
  });
  return sorted.map((k) => k.item);
}
