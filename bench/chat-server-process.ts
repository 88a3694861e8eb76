// The scripted chat server as a process of its own, so that a benchmark of the red-team
// evaluator does not share its event loop: prints its URL, serves until killed.
import { startChatServer } from '../test/helpers/chat-server.js';

const variant = process.argv[2] === 'vulnerable' ? 'vulnerable' : 'hardened';
const s = await startChatServer({ variant, keepPrompts: false });
process.stdout.write(`${s.url}\n`);
