// Browser test of `wsx serve`: the chat page in Debian's Chromium, driven by
// playwright-core (no browser download; /usr/bin/chromium from apt).
//
//   node interop/browser/chat_test.mjs path/to/wsx [--screenshot out.png]
//
// Starts `wsx serve 127.0.0.1:0`, opens three pages (ann and bob in room
// alpha, cat in room beta), checks that all three connect with
// permessage-deflate, that ann's message reaches bob and not cat, and that
// bob's reply reaches ann. Prints `browser chat test OK` and exits 0, or
// prints what failed and exits 1. Run by crates/ws-cli/tests/browser.rs;
// installed by interop/setup.sh.

import { spawn } from 'node:child_process';
import { chromium } from 'playwright-core';

const CHROMIUM = '/usr/bin/chromium';
const START_TIMEOUT = 15_000; // wsx prints its address
const LAUNCH_TIMEOUT = 30_000; // Chromium starts
const PAGE_TIMEOUT = 10_000; // a page loads and its socket opens
const MESSAGE_TIMEOUT = 5_000; // a chat line arrives
const ISOLATION_WAIT = 1_000; // how long a line must stay away from another room
const OVERALL_TIMEOUT = 50_000; // the whole run (the Rust test allows 60 s)

class Failure extends Error {}
const fail = (message) => {
    throw new Failure(message);
};

function parseArgs(argv) {
    let wsx;
    let screenshot;
    for (let i = 0; i < argv.length; i++) {
        if (argv[i] === '--screenshot') {
            screenshot = argv[++i];
            if (!screenshot) fail('--screenshot needs a path');
        } else if (!wsx) {
            wsx = argv[i];
        } else {
            fail(`unexpected argument ${JSON.stringify(argv[i])}`);
        }
    }
    if (!wsx) fail('usage: node chat_test.mjs path/to/wsx [--screenshot out.png]');
    return { wsx, screenshot };
}

// --- the server -------------------------------------------------------------

let server; // the wsx child process
let serverLog = ''; // its stderr and stdout, for failure reports

// Starts `wsx serve 127.0.0.1:0` and resolves with its base URL, read from its
// first stdout line `listening on http://ADDR`.
function startServer(wsx) {
    return new Promise((resolve, reject) => {
        let child;
        try {
            child = spawn(wsx, ['serve', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
        } catch (e) {
            reject(new Failure(`cannot start ${wsx}: ${e.message}`));
            return;
        }
        server = child;
        let stdout = '';
        let done = false;
        const finish = (error, url) => {
            if (done) return;
            done = true;
            clearTimeout(timer);
            if (error) reject(new Failure(error));
            else resolve(url);
        };
        const timer = setTimeout(
            () => finish(`wsx serve printed no "listening on http://ADDR" line within ${START_TIMEOUT} ms`),
            START_TIMEOUT,
        );
        child.stdout.setEncoding('utf8');
        child.stderr.setEncoding('utf8');
        child.stderr.on('data', (chunk) => {
            serverLog += chunk;
        });
        child.stdout.on('data', (chunk) => {
            serverLog += chunk;
            if (done) return;
            stdout += chunk;
            const newline = stdout.indexOf('\n');
            if (newline < 0) return;
            const first = stdout.slice(0, newline).trim();
            const match = /^listening on (http:\/\/\S+?)\/?$/.exec(first);
            if (match) finish(null, match[1]);
            else finish(`wsx serve's first line is ${JSON.stringify(first)}, not "listening on http://ADDR"`);
        });
        child.on('error', (e) => finish(`cannot start ${wsx}: ${e.message}`));
        child.on('exit', (code, signal) => {
            finish(`wsx serve exited before listening (${signal ?? `exit code ${code}`})`);
        });
    });
}

// Stops the server by its own pid: SIGTERM, then SIGKILL after 2 s.
async function stopServer() {
    const child = server;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 2_000);
    await exited;
    clearTimeout(timer);
    // A grandchild may still hold the pipes open; stop reading them.
    child.stdout.destroy();
    child.stderr.destroy();
}

// --- pages ------------------------------------------------------------------

const pageErrors = [];

async function openChat(browser, base, room, nick) {
    const context = await browser.newContext({ viewport: { width: 1000, height: 640 } });
    const page = await context.newPage();
    page.setDefaultTimeout(PAGE_TIMEOUT);
    page.on('pageerror', (e) => pageErrors.push(`${nick}: uncaught ${e.message}`));
    page.on('console', (m) => {
        if (m.type() === 'error') pageErrors.push(`${nick}: console.error ${m.text()}`);
    });
    const url = `${base}/?room=${encodeURIComponent(room)}&nick=${encodeURIComponent(nick)}`;
    try {
        const response = await page.goto(url, { timeout: PAGE_TIMEOUT });
        if (!response || !response.ok()) fail(`GET ${url}: status ${response ? response.status() : 'none'}`);
    } catch (e) {
        if (e instanceof Failure) throw e;
        fail(`${nick}: cannot load ${url}: ${e.message}`);
    }
    return { page, nick, room };
}

const text = (chat, selector) =>
    chat.page.evaluate((s) => {
        const element = document.querySelector(s);
        return element ? element.textContent : null;
    }, selector);

const logLines = (chat) =>
    chat.page.evaluate(() => [...document.querySelectorAll('#log .line')].map((l) => l.textContent));

async function waitForStatus(chat, wanted) {
    try {
        await chat.page.waitForFunction(
            (w) => document.querySelector('#status')?.textContent.trim() === w,
            wanted,
            { timeout: PAGE_TIMEOUT },
        );
    } catch {
        fail(`${chat.nick}: #status is ${JSON.stringify(await text(chat, '#status'))}, not ${JSON.stringify(wanted)}, after ${PAGE_TIMEOUT} ms`);
    }
}

async function waitForLine(chat, line, timeout = MESSAGE_TIMEOUT) {
    try {
        await chat.page.waitForFunction(
            (l) => [...document.querySelectorAll('#log .line')].some((e) => e.textContent === l),
            line,
            { timeout },
        );
    } catch {
        fail(`${chat.nick} (room ${chat.room}): no line ${JSON.stringify(line)} in #log after ${timeout} ms; it has ${JSON.stringify(await logLines(chat))}`);
    }
}

async function say(chat, message) {
    await chat.page.locator('#message').fill(message);
    await chat.page.locator('#send').click();
}

// --- the test ---------------------------------------------------------------

async function run({ wsx, screenshot }) {
    const base = await startServer(wsx);
    console.log(`wsx serve: ${base}`);

    let browser;
    try {
        try {
            browser = await chromium.launch({
                executablePath: CHROMIUM,
                headless: true,
                timeout: LAUNCH_TIMEOUT,
                args: [
                    '--no-sandbox',
                    '--disable-gpu',
                    '--disable-quic',
                    '--no-first-run',
                    '--disable-background-networking',
                    '--disable-component-update',
                    '--disable-sync',
                ],
            });
        } catch (e) {
            fail(`cannot launch ${CHROMIUM}: ${e.message}`);
        }
        console.log(`chromium ${browser.version()}`);

        // Open in order, each connected before the next, so that the joins are ordered.
        const ann = await openChat(browser, base, 'alpha', 'ann');
        await waitForStatus(ann, 'connected');
        const bob = await openChat(browser, base, 'alpha', 'bob');
        await waitForStatus(bob, 'connected');
        const cat = await openChat(browser, base, 'beta', 'cat');
        await waitForStatus(cat, 'connected');

        for (const chat of [ann, bob, cat]) {
            const extensions = await text(chat, '#extensions');
            if (!extensions || !extensions.includes('permessage-deflate')) {
                fail(`${chat.nick}: #extensions is ${JSON.stringify(extensions)}, without permessage-deflate`);
            }
        }
        console.log(`connected: ann and bob in alpha, cat in beta; extensions ${JSON.stringify(await text(ann, '#extensions'))}`);

        // bob's join reaches ann: bob is in the room before ann speaks.
        await waitForLine(ann, '* bob joined');

        const hello = 'hi bob! καλημέρα, ünïcödé over permessage-deflate';
        await say(ann, hello);
        await waitForLine(bob, `ann: ${hello}`);
        console.log('ann -> bob: delivered');

        await new Promise((resolve) => setTimeout(resolve, ISOLATION_WAIT));
        const leaked = (await logLines(cat)).filter((l) => l.includes(hello) || l.includes('* bob joined'));
        if (leaked.length > 0) fail(`cat (room beta) got room alpha's lines: ${JSON.stringify(leaked)}`);
        console.log('cat (room beta): saw nothing of alpha');

        const reply = 'hey ann, loud and clear';
        await say(bob, reply);
        await waitForLine(ann, `bob: ${reply}`);
        console.log('bob -> ann: delivered');

        if (screenshot) {
            const more = [
                [ann, 'this page talks to wsx serve, built on ws-tokio'],
                [bob, 'and every frame went through ws-proto, compressed'],
                [ann, 'bye for now'],
            ];
            for (const [chat, message] of more) {
                await say(chat, message);
                await waitForLine(ann, `${chat.nick}: ${message}`);
            }
            await ann.page.evaluate(() => document.activeElement?.blur());
            await ann.page.screenshot({ path: screenshot });
            console.log(`screenshot of ann's page: ${screenshot}`);
        }

        const uncaught = pageErrors.filter((e) => e.includes(': uncaught '));
        if (uncaught.length > 0) fail(`uncaught errors in the page:\n  ${uncaught.join('\n  ')}`);
    } finally {
        if (browser) {
            await Promise.race([browser.close(), new Promise((resolve) => setTimeout(resolve, 5_000))]);
        }
        await stopServer();
    }
}

async function main() {
    const overall = setTimeout(async () => {
        console.error(`browser chat test FAILED: not done within ${OVERALL_TIMEOUT} ms`);
        report();
        server?.kill('SIGKILL');
        process.exit(1);
    }, OVERALL_TIMEOUT);
    for (const signal of ['SIGINT', 'SIGTERM']) {
        process.on(signal, () => {
            server?.kill('SIGKILL');
            process.exit(1);
        });
    }
    try {
        await run(parseArgs(process.argv.slice(2)));
        console.log('browser chat test OK');
        process.exitCode = 0;
    } catch (e) {
        console.error(`browser chat test FAILED: ${e instanceof Failure ? e.message : e.stack ?? e}`);
        report();
        await stopServer().catch(() => {});
        process.exitCode = 1;
    } finally {
        clearTimeout(overall);
    }
    // Exit now rather than when every handle is gone (stdout and stderr are
    // written synchronously to files and pipes, so nothing is lost).
    process.exit(process.exitCode);
}

function report() {
    if (pageErrors.length > 0) console.error(`page errors:\n  ${pageErrors.join('\n  ')}`);
    if (serverLog) console.error(`wsx serve's output:\n${serverLog.trimEnd().split('\n').slice(-40).join('\n')}`);
}

await main();
