export { tunDecapMain as default } from '../lab/tun-decap.js';
