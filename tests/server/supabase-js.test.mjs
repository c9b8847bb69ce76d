// The official @supabase/supabase-js, unmodified, against our local backend:
// if these pass, the app's one code path works on hosted Supabase and on the
// embedded default alike.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, client, subscribe, nextBroadcast, eventually } from "./harness.mjs";

let server;
const clients = [];

function newClient(vsn) {
  const c = client(server, vsn);
  clients.push(c);
  return c;
}

async function signedIn(vsn) {
  const c = newClient(vsn);
  const { data, error } = await c.auth.signInAnonymously();
  assert.equal(error, null);
  return { c, session: data.session, user: data.user };
}

before(async () => {
  server = await startServer();
});

after(async () => {
  for (const c of clients) await c.removeAllChannels();
  await server?.stop();
});

test("anonymous sign-in and refresh with rotating refresh tokens", async () => {
  const { c, session, user } = await signedIn();
  assert.equal(user.is_anonymous, true);
  assert.equal(user.role, "authenticated");
  assert.equal(session.token_type, "bearer");
  assert.ok(session.expires_in > 0);

  const { data, error } = await c.auth.refreshSession();
  assert.equal(error, null);
  assert.notEqual(data.session.refresh_token, session.refresh_token);
  assert.equal(data.user.id, user.id);

  // The old refresh token was used up: a second client cannot reuse it.
  const other = newClient();
  const reuse = await other.auth.refreshSession({ refresh_token: session.refresh_token });
  assert.ok(reuse.error, "a used refresh token is refused");
  assert.equal(reuse.error.code, "refresh_token_already_used");
});

for (const vsn of ["1.0.0", "2.0.0"]) {
  test(`vsn ${vsn}: two clients exchange JSON broadcasts, with and without ack`, async () => {
    const a = newClient(vsn);
    const b = newClient(vsn);
    const topic = `chat-${vsn}-${Date.now()}`;
    const chA = a.channel(topic, { config: { broadcast: { ack: true } } });
    const chB = b.channel(topic);
    const gotOnB = nextBroadcast(chB, "hello");
    assert.equal((await subscribe(chA)).status, "SUBSCRIBED");
    assert.equal((await subscribe(chB)).status, "SUBSCRIBED");

    const acked = await chA.send({ type: "broadcast", event: "hello", payload: { n: 1, text: "hi" } });
    assert.equal(acked, "ok", "the server acknowledged the broadcast");
    const msg = await gotOnB;
    assert.deepEqual(msg.payload, { n: 1, text: "hi" });

    const gotOnA = nextBroadcast(chA, "reply");
    assert.equal(await chB.send({ type: "broadcast", event: "reply", payload: { ok: true } }), "ok");
    assert.deepEqual((await gotOnA).payload, { ok: true });
  });

  test(`vsn ${vsn}: presence shows each client to the other`, async () => {
    const a = newClient(vsn);
    const b = newClient(vsn);
    const topic = `lobby-${vsn}-${Date.now()}`;
    const chA = a.channel(topic, { config: { presence: { key: "alice" } } });
    const chB = b.channel(topic, { config: { presence: { key: "bob" } } });
    chA.on("presence", { event: "sync" }, () => {});
    chB.on("presence", { event: "sync" }, () => {});
    const left = new Promise((r) => chA.on("presence", { event: "leave" }, ({ key }) => key === "bob" && r()));
    assert.equal((await subscribe(chA)).status, "SUBSCRIBED");
    assert.equal((await subscribe(chB)).status, "SUBSCRIBED");
    assert.equal(await chA.track({ mood: "curious" }), "ok");
    assert.equal(await chB.track({ mood: "chatty" }), "ok");
    const stateOnA = await eventually(() => {
      const s = chA.presenceState();
      return s.bob && s.alice ? s : null;
    });
    assert.equal(stateOnA.bob[0].mood, "chatty");
    const stateOnB = await eventually(() => (chB.presenceState().alice ? chB.presenceState() : null));
    assert.equal(stateOnB.alice[0].mood, "curious");

    // Leaving is seen as a presence leave.
    await b.removeChannel(chB);
    await left;
  });
}

test("vsn 2.0.0: binary payloads travel as binary, byte for byte", async () => {
  const a = newClient("2.0.0");
  const b = newClient("2.0.0");
  const topic = `bin-${Date.now()}`;
  const chA = a.channel(topic, { config: { broadcast: { ack: true } } });
  const chB = b.channel(topic);
  const got = nextBroadcast(chB, "blob");
  await subscribe(chA);
  await subscribe(chB);
  const bytes = new Uint8Array([0, 1, 2, 250, 255, 128, 7]);
  assert.equal(await chA.send({ type: "broadcast", event: "blob", payload: bytes.buffer }), "ok");
  const msg = await got;
  assert.ok(msg.payload instanceof ArrayBuffer, "received an ArrayBuffer");
  assert.deepEqual([...new Uint8Array(msg.payload)], [...bytes]);
});

test("a vsn 1.0.0 client and a vsn 2.0.0 client share a topic", async () => {
  const v1 = newClient("1.0.0");
  const v2 = newClient("2.0.0");
  const topic = `mixed-${Date.now()}`;
  const ch1 = v1.channel(topic);
  const ch2 = v2.channel(topic);
  await subscribe(ch1);
  await subscribe(ch2);
  const on1 = nextBroadcast(ch1, "from-v2");
  await ch2.send({ type: "broadcast", event: "from-v2", payload: { x: [1, 2, 3] } });
  assert.deepEqual((await on1).payload, { x: [1, 2, 3] });
  const on2 = nextBroadcast(ch2, "from-v1");
  await ch1.send({ type: "broadcast", event: "from-v1", payload: { y: "z" } });
  assert.deepEqual((await on2).payload, { y: "z" });
});

test("self: true delivers a client's own broadcasts back to it", async () => {
  const a = newClient();
  const ch = a.channel(`self-${Date.now()}`, { config: { broadcast: { self: true } } });
  const own = nextBroadcast(ch, "echo");
  await subscribe(ch);
  await ch.send({ type: "broadcast", event: "echo", payload: { me: true } });
  assert.deepEqual((await own).payload, { me: true });
});

test("a private room topic admits its two matched users and refuses a third", async () => {
  const users = [await signedIn(), await signedIn(), await signedIn()];
  // Each user listens on their own private inbox before queueing.
  const inboxes = [];
  for (const [i, { c, user }] of users.entries()) {
    await c.realtime.setAuth();
    const inbox = c.channel(`inbox:${user.id}`, { config: { private: true } });
    const matched = i < 2 ? nextBroadcast(inbox, "matched", 10_000) : null;
    assert.equal((await subscribe(inbox)).status, "SUBSCRIBED");
    inboxes.push({ inbox, matched });
  }
  const [first, second, third] = users;
  assert.equal((await first.c.rpc("join_queue")).data.status, "waiting");
  const joined = await second.c.rpc("join_queue");
  assert.equal(joined.error, null);
  assert.equal(joined.data.status, "matched");

  const [m1, m2] = await Promise.all([inboxes[0].matched, inboxes[1].matched]);
  assert.equal(m1.payload.match_id, m2.payload.match_id);
  assert.deepEqual([m1.payload.role, m2.payload.role].sort(), ["answerer", "offerer"]);
  const topic = m1.payload.topic;

  const room1 = first.c.channel(topic, { config: { private: true } });
  const room2 = second.c.channel(topic, { config: { private: true } });
  assert.equal((await subscribe(room1)).status, "SUBSCRIBED");
  assert.equal((await subscribe(room2)).status, "SUBSCRIBED");
  const got = nextBroadcast(room2, "offer");
  await room1.send({ type: "broadcast", event: "offer", payload: { v: 1 } });
  assert.deepEqual((await got).payload, { v: 1 });

  const intruder = third.c.channel(topic, { config: { private: true } });
  const { status, err } = await subscribe(intruder);
  assert.equal(status, "CHANNEL_ERROR");
  assert.match(String(err?.message ?? err), /Unauthorized/);

  // Someone else's inbox is private too.
  const snoop = third.c.channel(`inbox:${first.user.id}`, { config: { private: true } });
  assert.equal((await subscribe(snoop)).status, "CHANNEL_ERROR");
});
