// Real application-protocol libraries through wstap (tests/protocols.rs): each client is
// the library's own, its server the library's own where it has one (Socket.IO,
// graphql-ws) or a small one here speaking the library's wire
// protocol with the library's own codec (a SignalR hub with @microsoft/signalr's JSON and
// MessagePack hub protocols, a STOMP broker), and MQTT.js against the aedes broker over
// WebSocket. Every client reaches its server through the proxy. Prints one JSON line:
// what each client sent and got. Exits non-zero on a mismatch.
//
//   node protocols.mjs '{"proxy":"127.0.0.1:8888"}'

import { createServer } from "node:http";
import { once } from "node:events";
import { WebSocket, WebSocketServer, createWebSocketStream } from "ws";
import { Aedes } from "aedes";
import { HttpsProxyAgent } from "https-proxy-agent";
import { Server as SocketIoServer } from "socket.io";
import { io as socketIoClient } from "socket.io-client";
import { createClient as graphqlClient } from "graphql-ws";
import { useServer as graphqlServer } from "graphql-ws/use/ws";
import { GraphQLObjectType, GraphQLSchema, GraphQLString } from "graphql";
import mqtt from "mqtt";
import { Client as StompClient } from "@stomp/stompjs";
import * as signalR from "@microsoft/signalr";
import { MessagePackHubProtocol } from "@microsoft/signalr-protocol-msgpack";

const args = JSON.parse(process.argv[2]);
const agent = new HttpsProxyAgent(`http://${args.proxy}`);
const report = {};

function check(ok, what) {
  if (!ok) throw new Error(`check failed: ${what}`);
}

/** `ws`'s WebSocket through the proxy, for libraries that take a WebSocket class. */
class ProxiedWebSocket extends WebSocket {
  constructor(url, protocols, options = {}) {
    super(url, protocols, { ...options, agent });
  }
}

async function listening(server) {
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return server.address().port;
}

/** Socket.IO: an event with an ack, a binary attachment, a second namespace. */
async function socketio() {
  const http = createServer();
  const server = new SocketIoServer(http, { transports: ["websocket"] });
  server.on("connection", (socket) => {
    socket.on("chat", (text, ack) => {
      socket.emit("chat", { from: "server", text });
      ack(`got ${text}`);
    });
    socket.on("upload", (bytes, ack) => ack(bytes.length));
  });
  server.of("/admin").on("connection", (socket) => socket.on("kick", (who, ack) => ack(`kicked ${who}`)));
  const port = await listening(http);
  const options = { transports: ["websocket"], agent };
  const client = socketIoClient(`http://127.0.0.1:${port}`, options);
  const admin = socketIoClient(`http://127.0.0.1:${port}/admin`, options);
  const pushed = once(client, "chat");
  const answer = await client.emitWithAck("chat", "hello");
  check(answer === "got hello", `socket.io ack: ${answer}`);
  await pushed;
  const length = await client.emitWithAck("upload", Buffer.from([1, 2, 3, 4]));
  check(length === 4, `socket.io binary: ${length}`);
  const kicked = await admin.emitWithAck("kick", "Adam");
  check(kicked === "kicked Adam", `socket.io namespace: ${kicked}`);
  admin.disconnect();
  client.disconnect();
  server.close();
  report.socketio = { answer, length, kicked };
}

/** graphql-ws (graphql-transport-ws): a subscription and a query. */
async function graphql() {
  const schema = new GraphQLSchema({
    query: new GraphQLObjectType({
      name: "Query",
      fields: { hello: { type: GraphQLString, resolve: () => "world" } },
    }),
    subscription: new GraphQLObjectType({
      name: "Subscription",
      fields: {
        greetings: {
          type: GraphQLString,
          subscribe: async function* greet() {
            for (const hi of ["Hi", "Bonjour"]) yield { greetings: hi };
          },
        },
      },
    }),
  });
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, path: "/graphql" });
  await once(wss, "listening");
  const stop = graphqlServer({ schema }, wss);
  const client = graphqlClient({ url: `ws://127.0.0.1:${wss.address().port}/graphql`, webSocketImpl: ProxiedWebSocket, lazy: true });
  const run = (query) => new Promise((resolve, reject) => {
    const got = [];
    client.subscribe({ query }, { next: (d) => got.push(d.data), error: reject, complete: () => resolve(got) });
  });
  const greetings = await run("subscription OnGreeting { greetings }");
  check(greetings.map((g) => g.greetings).join() === "Hi,Bonjour", `graphql subscription: ${JSON.stringify(greetings)}`);
  const hello = await run("query SayHello { hello }");
  check(hello[0]?.hello === "world", `graphql query: ${JSON.stringify(hello)}`);
  await client.dispose();
  await stop.dispose();
  wss.close();
  report.graphql = { greetings: greetings.length, hello: hello[0].hello };
}

/** MQTT.js 5 against the aedes broker over WebSocket (subprotocol `mqtt`): subscribe,
 * publish at QoS 1, get it back. */
async function mqttSession() {
  const broker = await Aedes.createBroker();
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, handleProtocols: (protocols) => (protocols.has("mqtt") ? "mqtt" : false) });
  await once(wss, "listening");
  wss.on("connection", (sock) => broker.handle(createWebSocketStream(sock)));
  const client = await mqtt.connectAsync(`ws://127.0.0.1:${wss.address().port}/mqtt`, {
    protocolVersion: 4, clientId: "wstap-probe", wsOptions: { agent }, reconnectPeriod: 0,
  });
  const got = new Promise((resolve) => client.once("message", (topic, payload) => resolve([topic, payload.toString()])));
  await client.subscribeAsync("sensors/#", { qos: 1 });
  await client.publishAsync("sensors/t1", JSON.stringify({ t: 21.5 }), { qos: 1 });
  const [topic, payload] = await got;
  check(topic === "sensors/t1", `mqtt topic: ${topic}`);
  await client.endAsync();
  await new Promise((resolve) => broker.close(resolve));
  wss.close();
  report.mqtt = { topic, payload };
}

/** A STOMP 1.2 broker: CONNECTED, SUBSCRIBE, SEND relayed as MESSAGE, RECEIPT. */
function stompBroker() {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, handleProtocols: (protocols) => (protocols.has("v12.stomp") ? "v12.stomp" : false) });
  wss.on("connection", (sock) => {
    const subscriptions = new Map();
    let messageId = 0;
    const frame = (command, headers, body = "") => sock.send(`${command}\n${Object.entries(headers).map(([k, v]) => `${k}:${v}`).join("\n")}\n\n${body}\0`);
    sock.on("message", (data) => {
      for (const raw of data.toString().split("\0")) {
        const text = raw.replace(/^\n+/, "");
        if (!text) continue;
        const [head, ...rest] = text.split("\n\n");
        const [command, ...lines] = head.split("\n");
        const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(":")), l.slice(l.indexOf(":") + 1)]));
        const body = rest.join("\n\n");
        if (command === "CONNECT" || command === "STOMP") frame("CONNECTED", { version: "1.2", "heart-beat": "0,0" });
        if (command === "SUBSCRIBE") subscriptions.set(headers.destination, headers.id);
        if (command === "SEND" && subscriptions.has(headers.destination)) {
          frame("MESSAGE", { destination: headers.destination, subscription: subscriptions.get(headers.destination), "message-id": String(++messageId), "content-type": "text/plain" }, body);
        }
        if (headers.receipt) frame("RECEIPT", { "receipt-id": headers.receipt });
      }
    });
  });
  return wss;
}

/** @stomp/stompjs against the broker above. */
async function stomp() {
  const wss = stompBroker();
  await once(wss, "listening");
  const url = `ws://127.0.0.1:${wss.address().port}/stomp`;
  const client = new StompClient({
    webSocketFactory: () => new ProxiedWebSocket(url, ["v12.stomp"]),
    reconnectDelay: 0, heartbeatIncoming: 0, heartbeatOutgoing: 0,
  });
  const connected = new Promise((resolve) => { client.onConnect = resolve; });
  client.activate();
  await connected;
  const got = new Promise((resolve) => client.subscribe("/topic/chat", (m) => resolve(m.body)));
  const receipt = new Promise((resolve) => client.watchForReceipt("r-1", resolve));
  client.publish({ destination: "/topic/chat", body: "hello stomp", headers: { receipt: "r-1" } });
  const body = await got;
  await receipt;
  check(body === "hello stomp", `stomp body: ${body}`);
  await client.deactivate();
  wss.close();
  report.stomp = { body };
}

/** A SignalR hub (here) with the library's own hub protocol codec; the library's client. */
async function signalr(protocolName) {
  const protocol = protocolName === "messagepack" ? new MessagePackHubProtocol() : new signalR.JsonHubProtocol();
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, path: "/chathub" });
  await once(wss, "listening");
  wss.on("connection", (sock) => {
    let handshaken = false;
    sock.on("message", (data, isBinary) => {
      if (!handshaken) {
        handshaken = true;
        sock.send("{}\x1e");
        return;
      }
      const input = isBinary ? data.buffer.slice(data.byteOffset, data.byteOffset + data.length) : data.toString();
      for (const m of protocol.parseMessages(input, signalR.NullLogger.instance)) {
        if (m.type !== signalR.MessageType.Invocation) continue;
        const push = protocol.writeMessage({ type: signalR.MessageType.Invocation, target: "ReceiveMessage", arguments: m.arguments, headers: {} });
        sock.send(push);
        if (m.invocationId) {
          sock.send(protocol.writeMessage({ type: signalR.MessageType.Completion, invocationId: m.invocationId, result: `${m.arguments[0]} said ${m.arguments[1]}`, headers: {} }));
        }
      }
    });
  });
  const connection = new signalR.HubConnectionBuilder()
    .withUrl(`http://127.0.0.1:${wss.address().port}/chathub`, { skipNegotiation: true, transport: signalR.HttpTransportType.WebSockets, WebSocket: ProxiedWebSocket })
    .withHubProtocol(protocol)
    .configureLogging(signalR.LogLevel.None)
    .build();
  const pushed = new Promise((resolve) => connection.on("ReceiveMessage", (who, text) => resolve(`${who}: ${text}`)));
  await connection.start();
  const result = await connection.invoke("SendMessage", "John", "hi");
  check(result === "John said hi", `signalr ${protocolName} completion: ${result}`);
  const push = await pushed;
  await connection.stop();
  wss.close();
  report[`signalr_${protocolName}`] = { result, push };
}

await socketio();
await graphql();
await mqttSession();
await stomp();
await signalr("json");
await signalr("messagepack");
console.log(JSON.stringify(report));
process.exit(0);
