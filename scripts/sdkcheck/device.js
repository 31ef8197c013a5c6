#!/usr/bin/env node
// device.js drives Microsoft's Azure IoT device SDK for Node.js (azure-iot-device +
// azure-iot-device-mqtt) against an IoT Hub, step by step, so that a test written in any
// language can check the hub's side of every exchange. fakehub/sdkcheck_test.go uses it to
// prove that Outpost's fake IoT Hub speaks the dialect a real third-party client expects.
//
// Environment:
//   CONNECTION_STRING  device or module connection string (a module one, with ModuleId=,
//                      makes it a ModuleClient whose telemetry goes out as output events)
//   CA_FILE            PEM file of the CA that signed the hub's server certificate
//   OUTPUT_NAME        output name for module telemetry (default "out1")
//   DEBUG=azure*       the SDK's own wire-level logging, on stderr
//
// Protocol: one command per line on stdin, one JSON object per line on stdout, each with an
// "event" field. The process prints {"event":"ready"} once the client is open, then:
//   send              sends 3 messages ("sent" each, with its messageId)
//   twin              gets the twin ("twin", with desired and reported)
//   report {json}     updates reported properties with the JSON patch ("reported")
//   listen            registers the desired-patch listener, the "echo" method handler and
//                     (devices only) the C2D listener, then does a twin GET round trip so the
//                     hub has processed every SUBSCRIBE before "listening" is printed
//   quit              closes the client and exits 0
// and, once listening, asynchronously: "desired" (each patch the SDK fires, including the
// current desired properties it fires on registration), "method" (after the echo response
// was sent) and "c2d" (after the message was completed).
// Any failure prints {"event":"error","error":...} and exits 1; so does an unexpected
// disconnect, since the hub must not drop a healthy client.
'use strict';

const fs = require('fs');
const readline = require('readline');
const { Client, ModuleClient, Message } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');

function emit(event, fields) {
  process.stdout.write(JSON.stringify(Object.assign({ event }, fields)) + '\n');
}

function fail(err) {
  const message = err && err.stack ? err.stack : String(err);
  emit('error', { error: String(err && err.message ? err.message : err) });
  process.stderr.write('device.js: ' + message + '\n');
  process.exit(1);
}

function requireEnv(name) {
  const value = process.env[name];
  if (!value) {
    fail(new Error('environment variable ' + name + ' is required'));
  }
  return value;
}

const connectionString = requireEnv('CONNECTION_STRING');
const caFile = requireEnv('CA_FILE');
const outputName = process.env.OUTPUT_NAME || 'out1';
const isModule = /(^|;)\s*ModuleId=/i.test(connectionString);

let client;
let twin;
let closing = false;

// bodyText turns a message body (a Buffer) into a string for the JSON lines.
function bodyText(body) {
  if (body === undefined || body === null) {
    return '';
  }
  return Buffer.isBuffer(body) ? body.toString('utf8') : String(body);
}

async function sendMessages() {
  for (let i = 1; i <= 3; i++) {
    const messageId = 'sdkcheck-' + i;
    const msg = new Message(JSON.stringify({ seq: i, sdk: 'azure-iot-device' }));
    msg.messageId = messageId;
    msg.contentType = 'application/json';
    msg.contentEncoding = 'utf-8';
    msg.properties.add('sdkcheck', 'yes ' + i);
    if (isModule) {
      await client.sendOutputEvent(outputName, msg);
    } else {
      await client.sendEvent(msg);
    }
    emit('sent', { messageId, seq: i });
  }
}

async function getTwin() {
  twin = await client.getTwin();
  emit('twin', { desired: twin.properties.desired, reported: twin.properties.reported });
}

async function reportProperties(patchText) {
  if (!twin) {
    throw new Error('report before twin: send "twin" first');
  }
  let patch;
  try {
    patch = JSON.parse(patchText);
  } catch (err) {
    throw new Error('report: patch is not JSON: ' + err.message);
  }
  await new Promise((resolve, reject) => {
    twin.properties.reported.update(patch, (err) => (err ? reject(err) : resolve()));
  });
  emit('reported', { patch });
}

function onEcho(request, response) {
  // The SDK hands over the request body parsed as JSON (null when empty) and serialises
  // the response payload with JSON.stringify, so echoing it returns an equal JSON value.
  const payload = request.payload === undefined ? null : request.payload;
  response.send(200, payload, (err) => {
    if (err) {
      fail(err);
      return;
    }
    emit('method', { methodName: request.methodName, requestId: request.requestId, payload });
  });
}

function onC2D(msg) {
  client.complete(msg, (err) => {
    if (err) {
      fail(err);
      return;
    }
    const properties = {};
    for (let i = 0; i < msg.properties.count(); i++) {
      const p = msg.properties.getItem(i);
      properties[p.key] = p.value;
    }
    emit('c2d', {
      messageId: msg.messageId,
      correlationId: msg.correlationId,
      contentType: msg.contentType,
      contentEncoding: msg.contentEncoding,
      body: bodyText(msg.data),
      properties,
    });
  });
}

async function listen() {
  if (!twin) {
    throw new Error('listen before twin: send "twin" first');
  }
  twin.on('error', fail);
  twin.on('properties.desired', (patch) => emit('desired', { patch }));
  if (isModule) {
    client.onMethod('echo', onEcho);
  } else {
    client.onDeviceMethod('echo', onEcho);
    client.on('message', onC2D);
  }
  // The SDK subscribes on listener registration without a callback; a GET answered after
  // those SUBSCRIBEs (one connection, processed in order) proves they are in place.
  await client.getTwin();
  emit('listening', {});
}

async function handle(line) {
  const trimmed = line.trim();
  if (trimmed === '') {
    return;
  }
  const space = trimmed.indexOf(' ');
  const command = space < 0 ? trimmed : trimmed.slice(0, space);
  const arg = space < 0 ? '' : trimmed.slice(space + 1);
  switch (command) {
    case 'send':
      return sendMessages();
    case 'twin':
      return getTwin();
    case 'report':
      return reportProperties(arg);
    case 'listen':
      return listen();
    case 'quit':
      closing = true;
      await client.close();
      emit('closed', {});
      process.exit(0);
      return;
    default:
      throw new Error('unknown command ' + JSON.stringify(command));
  }
}

async function main() {
  const Ctor = isModule ? ModuleClient : Client;
  client = Ctor.fromConnectionString(connectionString, Mqtt);
  // No retries: a hub error must surface as a failure here, not be papered over by the
  // SDK's default exponential back-off (which would retry for up to 4 minutes).
  client.setRetryPolicy({ shouldRetry: () => false, nextRetryTimeout: () => 0 });
  client.on('error', fail);
  client.on('disconnect', (reason) => {
    if (!closing) {
      fail(new Error('unexpected disconnect: ' + (reason && reason.message ? reason.message : JSON.stringify(reason))));
    }
  });
  await client.setOptions({ ca: fs.readFileSync(caFile, 'utf8') });
  await client.open();
  emit('ready', { module: isModule });

  // Commands run one at a time, in order, so the driver sees each step's events before the next.
  const rl = readline.createInterface({ input: process.stdin, terminal: false });
  let queue = Promise.resolve();
  rl.on('line', (line) => {
    queue = queue.then(() => handle(line)).catch(fail);
  });
  rl.on('close', () => {
    queue.then(() => {
      if (!closing) {
        fail(new Error('stdin closed without "quit"'));
      }
    });
  });
}

main().catch(fail);
