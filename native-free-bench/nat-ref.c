/*
 * C reference for the established NAT-in loop of the native-free bench: the same
 * work on the same data as ulvs's fast path (src/core/fastpath.ts), so the bench
 * can report how far the JavaScript is from plain C on this machine.
 *
 *   cc -O2 -o nat-ref nat-ref.c && ./nat-ref <conns> <packets> <capacity> <runs> <prefetch 0|1>
 *
 * Same data: <conns> connections with the bench's client addresses and ports, 16
 * NAT destinations, an open-addressing hash of 24-byte records sized like
 * ConnTable's (2 x capacity slots, rounded up to a power of two), one 32-byte hot
 * record per connection, frames in the bench's random flow order, batches of 64
 * refilled from a pristine ring. Same work per frame: Ethernet/IPv4/TCP checks,
 * inbound lookup, state and timeout checks, next-hop and source MAC, TTL
 * decrement, three sets of packet/byte counters, the incoming-packet count,
 * address and port rewrite with incremental checksums, expiry re-arm.
 * With prefetch=1 each batch first touches every frame's slots and hot record,
 * as FastPath.prepare does. Prints one JSON line; times are CPU time.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BATCH 64
#define HEADROOM 128
#define SLOT_SIZE (128 + 9216 + 64)
#define REC 6
#define HOT 8
#define M_USED 0x01
#define M_MASQ 0x10
#define IN_MASK (0xff00 | 0x01 | 0x02 | 0x04 | 0x08)
#define N_DESTS 16
#define TCP_S_ESTABLISHED 1
#define EST_TIMEOUT 900

static uint32_t *slots;
static uint32_t slot_mask;
static uint32_t seed = 7;
static uint32_t *hot; /* HOT words per conn: timeout, inpkts, expires (f64 at word 2), dest, svc, state/fwd/daf byte word */

struct dest { uint8_t mac[6]; int available; double cnt[5]; };
static struct dest dests[N_DESTS];
static double svc_cnt[5], total_cnt[5];
static const uint8_t dir_mac[6] = { 2, 0, 0, 0, 0, 1 };

static double cpu_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return t.tv_sec * 1e9 + t.tv_nsec;
}

static inline uint32_t rotl(uint32_t x, int r) { return (x << r) | (x >> (32 - r)); }

/* ConnTable.home: the same mix. */
static inline uint32_t home(uint32_t proto, uint32_t ckey, uint32_t cport) {
  uint32_t h = (ckey ^ seed) * 0xcc9e2d51u;
  h = rotl(h, 15);
  h *= 0x1b873593u;
  h ^= cport | (proto << 16) | (4u << 24);
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  h ^= h >> 16;
  return h & slot_mask;
}

static inline double *expires_of(uint32_t id) { return (double *)&hot[id * HOT + 2]; }

static void insert(uint32_t id, uint32_t caddr, uint32_t cport, uint32_t vaddr, uint32_t vport, uint32_t daddr, uint32_t dport) {
  uint32_t i = home(6, caddr, cport);
  while (slots[i * REC + 4] & M_USED) i = (i + 1) & slot_mask;
  uint32_t *r = &slots[i * REC];
  r[0] = caddr; r[1] = vaddr; r[2] = daddr; r[3] = (cport << 16) | vport;
  r[4] = (dport << 16) | (6 << 8) | M_USED | M_MASQ; r[5] = id;
}

static inline int64_t find_in(uint32_t proto, uint32_t caddr, uint32_t cport, uint32_t vaddr, uint32_t vport) {
  uint32_t ports = (cport << 16) | vport, meta = (proto << 8) | M_USED;
  for (uint32_t i = home(proto, caddr, cport);; i = (i + 1) & slot_mask) {
    const uint32_t *r = &slots[i * REC];
    uint32_t m = r[4];
    if (!(m & M_USED)) return -1;
    if (r[0] == caddr && r[3] == ports && (m & IN_MASK) == meta && r[1] == vaddr) return i * REC;
  }
}

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }
static inline void wr16(uint8_t *p, uint32_t v) { p[0] = v >> 8; p[1] = v; }
static inline void wr32(uint8_t *p, uint32_t v) { p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v; }

static double now_s = 1000;

/* The fast path for one frame; returns 1 when forwarded. */
static inline int forward(uint8_t *f, uint32_t len) {
  if (len < 42 || f[12] != 0x08 || f[13] != 0x00) return 0;
  uint8_t *l3 = f + 14;
  if (l3[0] != 0x45) return 0;
  uint32_t tot = rd16(l3 + 2);
  if (tot < 28 || tot > len - 14) return 0;
  if (rd16(l3 + 6) & 0x3fff) return 0;
  if (l3[8] <= 1) return 0;
  if (l3[9] != 6 || tot < 40) return 0;
  uint8_t *l4 = l3 + 20;
  uint32_t doff = l4[12] >> 4;
  if (doff < 5 || 20 + (doff << 2) > tot) return 0;
  if ((l4[13] & 0x07) || !(l4[13] & 0x10)) return 0;
  if (tot > 1500) return 0;
  uint32_t saddr = rd32(l3 + 12), daddr = rd32(l3 + 16), sport = rd16(l4), dport = rd16(l4 + 2);
  int64_t r = find_in(6, saddr, sport, daddr, dport);
  if (r < 0) return 0;
  uint32_t id = slots[r + 5];
  const uint32_t *h = &hot[id * HOT];
  const uint8_t *hb = (const uint8_t *)&h[6];
  if (hb[2] != 4 || hb[1] != 0 /* MASQ */) return 0;
  if (hb[0] != TCP_S_ESTABLISHED || h[0] != EST_TIMEOUT) return 0;
  struct dest *d = &dests[h[4]];
  if (!d->available) return 0;
  memcpy(f, d->mac, 6);
  memcpy(f + 6, dir_mac, 6);
  l3[8]--;
  uint32_t ipc = rd16(l3 + 10) + 0x0100;
  if (ipc >= 0xffff) ipc++;
  ipc &= 0xffff;
  d->cnt[1] += 1; d->cnt[3] += tot;
  svc_cnt[1] += 1; svc_cnt[3] += tot;
  total_cnt[1] += 1; total_cnt[3] += tot;
  hot[id * HOT + 1]++;
  uint32_t nd = slots[r + 2], np = slots[r + 4] >> 16;
  uint32_t oa = (~daddr >> 16 & 0xffff) + (~daddr & 0xffff), na = (nd >> 16) + (nd & 0xffff);
  uint32_t c = (~rd16(l4 + 16) & 0xffff) + oa + na + (~dport & 0xffff) + np;
  c = (c & 0xffff) + (c >> 16);
  c = ~((c & 0xffff) + (c >> 16)) & 0xffff;
  wr16(l4 + 16, c);
  wr16(l4 + 2, np);
  wr32(l3 + 16, nd);
  uint32_t s = (~ipc & 0xffff) + oa + na;
  s = (s & 0xffff) + (s >> 16);
  s = ~((s & 0xffff) + (s >> 16)) & 0xffff;
  wr16(l3 + 10, s);
  double *e = expires_of(id);
  double when = now_s + h[0];
  if (when < *e) { /* would move in the timing wheel; never in this run */ }
  *e = when;
  return 1;
}

static uint32_t sink;

static void prefetch(uint8_t *arena, const uint32_t *off, int n) {
  uint32_t in_home[BATCH];
  for (int i = 0; i < n; i++) {
    const uint8_t *l3 = arena + off[i] + 14;
    in_home[i] = home(l3[9], rd32(l3 + 12), rd16(l3 + 20)) * REC;
  }
  for (int i = 0; i < n; i++) sink ^= ((volatile uint32_t *)slots)[in_home[i] + 4];
  for (int i = 0; i < n; i++) {
    const uint32_t *r = &slots[in_home[i]];
    if (r[4] & M_USED) sink ^= ((volatile uint32_t *)hot)[r[5] * HOT];
  }
}

static uint32_t xs = 12345; /* the JS bench's rng(12345): same flow order */
static uint32_t xorshift(void) { xs ^= xs << 13; xs ^= xs >> 17; xs ^= xs << 5; return xs; }

static uint16_t csum(const uint8_t *p, int n, uint32_t s) {
  for (int i = 0; i + 1 < n; i += 2) s += rd16(p + i);
  if (n & 1) s += p[n - 1] << 8;
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return ~s & 0xffff;
}

/* The bench's client(i): 172.(16 + (i>>16 & 15)).(i>>8 & 255).(i & 255 || 1), 11.0.0.0 + i from 2^20 on; port 1024 + (i*7) % 60000. */
static void client(uint32_t i, uint32_t *ip, uint32_t *port) {
  uint32_t last = i & 255;
  *ip = i >= (1u << 20) ? 0x0b000000u + i : (172u << 24) | ((16 + ((i >> 16) & 15)) << 16) | (((i >> 8) & 255) << 8) | (last ? last : 1);
  *port = 1024 + (uint32_t)(((uint64_t)i * 7) % 60000);
}

static void build_ack(uint8_t *f, uint32_t saddr, uint32_t sport, uint32_t daddr, uint32_t dport) {
  memset(f, 0, 54);
  memcpy(f, dir_mac, 6);
  f[6] = 2; f[11] = 0xc1;
  f[12] = 0x08;
  uint8_t *l3 = f + 14, *l4 = f + 34;
  l3[0] = 0x45; wr16(l3 + 2, 40); l3[6] = 0x40; l3[8] = 64; l3[9] = 6;
  wr32(l3 + 12, saddr); wr32(l3 + 16, daddr);
  wr16(l3 + 10, csum(l3, 20, 0));
  wr16(l4, sport); wr16(l4 + 2, dport); wr32(l4 + 4, 1); wr32(l4 + 8, 1);
  l4[12] = 5 << 4; l4[13] = 0x10; wr16(l4 + 14, 65535);
  uint32_t ps = (saddr >> 16) + (saddr & 0xffff) + (daddr >> 16) + (daddr & 0xffff) + 6 + 20;
  wr16(l4 + 16, csum(l4, 20, ps));
}

int main(int argc, char **argv) {
  if (argc < 6) { fprintf(stderr, "usage: %s conns packets capacity runs prefetch\n", argv[0]); return 2; }
  uint32_t n = strtoul(argv[1], 0, 10), packets = strtoul(argv[2], 0, 10), cap = strtoul(argv[3], 0, 10);
  int runs = atoi(argv[4]), pf = atoi(argv[5]);
  uint32_t nslots = 16;
  while (nslots < cap * 2) nslots *= 2;
  slot_mask = nslots - 1;
  slots = calloc((size_t)nslots * REC, 4);
  hot = calloc((size_t)cap * HOT, 4);
  if (!slots || !hot) { fprintf(stderr, "out of memory\n"); return 1; }
  for (int k = 0; k < N_DESTS; k++) {
    uint8_t m[6] = { 2, 0, 0, 0, 0x10, (uint8_t)(k + 16) };
    memcpy(dests[k].mac, m, 6);
    dests[k].available = 1;
  }
  const uint32_t vip = 0x0a000064, vport = 80;
  for (uint32_t i = 0; i < n; i++) {
    uint32_t ip, port;
    client(i, &ip, &port);
    uint32_t dk = i % N_DESTS, daddr = (10u << 24) | (1u << 16) | (dk + 1);
    insert(i, ip, port, vip, vport, daddr, 8080);
    uint32_t *h = &hot[i * HOT];
    h[0] = EST_TIMEOUT; h[4] = dk;
    *expires_of(i) = now_s + EST_TIMEOUT;
    uint8_t *hb = (uint8_t *)&h[6];
    hb[0] = TCP_S_ESTABLISHED; hb[1] = 0; hb[2] = 4;
  }
  uint32_t ring = n < 65536 ? 65536 : n > (1u << 20) ? (1u << 20) : n; /* the JS bench's ring size */
  uint8_t *pristine = malloc((size_t)ring * 64);
  uint32_t *ring_len = malloc((size_t)ring * 4);
  for (uint32_t k = 0; k < ring; k++) {
    uint32_t ip, port;
    client(xorshift() % n, &ip, &port);
    build_ack(pristine + (size_t)k * 64, ip, port, vip, vport);
    ring_len[k] = 54;
  }
  uint8_t *arena = malloc((size_t)BATCH * SLOT_SIZE);
  uint32_t off[BATCH], len[BATCH];
  double best[2] = { 1e30, 1e30 }, meds[2][64];
  uint64_t fwd = 0;
  for (int run = 0; run <= runs && run < 64; run++) {
    for (int mode = 0; mode < 2; mode++) {
      /* mode 0: refill + forward; mode 1: refill only (subtracted, like the JS bench). */
      double t0 = cpu_ns();
      uint64_t f = 0;
      for (uint32_t k = 0; k < packets; k += BATCH) {
        int nb = packets - k < BATCH ? (int)(packets - k) : BATCH;
        for (int j = 0; j < nb; j++) {
          uint32_t r = (k + j) % ring;
          off[j] = j * SLOT_SIZE + HEADROOM;
          len[j] = ring_len[r];
          memcpy(arena + off[j], pristine + (size_t)r * 64, 64);
        }
        if (mode == 0) {
          if (pf) prefetch(arena, off, nb);
          for (int j = 0; j < nb; j++) f += forward(arena + off[j], len[j]);
        } else {
          for (int j = 0; j < nb; j++) f += arena[off[j] + 23];
        }
      }
      double t = (cpu_ns() - t0) / packets;
      if (mode == 0) fwd = f;
      if (run > 0) meds[mode][run - 1] = t; /* run 0 warms up */
    }
  }
  for (int mode = 0; mode < 2; mode++) {
    for (int a = 0; a < runs; a++) for (int b = a + 1; b < runs; b++) if (meds[mode][b] < meds[mode][a]) { double x = meds[mode][a]; meds[mode][a] = meds[mode][b]; meds[mode][b] = x; }
    best[mode] = runs % 2 ? meds[mode][runs / 2] : (meds[mode][runs / 2 - 1] + meds[mode][runs / 2]) / 2;
  }
  double ns = best[0] - best[1];
  if (ns < 0) ns = 0;
  printf("{\"ns_per_packet\":%.2f,\"refill_ns_per_packet\":%.2f,\"forwarded\":%llu,\"packets\":%u,\"conns\":%u,\"prefetch\":%d,\"sink\":%u}\n",
    ns, best[1], (unsigned long long)fwd, packets, n, pf, sink & 1);
  return fwd == packets ? 0 : 1;
}
