/** `node dist/src/lab/tun-decap-main.js [options]`: the tun-decap command on its own (see tun-decap.ts). */
import { tunDecapMain } from './tun-decap.js';

process.exit(await tunDecapMain(process.argv.slice(2)));
