// app.js - the page of `sinkstream serve` (docs/SERVER.md): starts and steers
// sessions through the /v1 API, plays a session's live view (fragmented MP4
// through Media Source Extensions, MJPEG where MSE or H.264 is missing),
// follows its Server-Sent Events (timeline of prompts, chunk times) and
// measures the delay from a frame's decode on the server to its display here.
// Plain JavaScript, no dependencies, works offline.
'use strict';

const $ = (id) => document.getElementById(id);
const state = {
  id: null,          // the session shown
  fps: 16,
  events: null,      // EventSource
  media: null,       // { ms, sb, abort, queue }
  chunkTimes: [],    // [{first, n, t}] from "chunk" events: when frames left the decoder (epoch ms)
  latencies: [],     // ms, decode -> display, one per displayed frame with a known decode time
  framesShown: 0,
  pending: new Map(),// prompt request id -> <li> waiting for its "prompt" event
};
window.sinkstream = state; // for the browser test and the curious

const params = new URLSearchParams(location.search);
const forceMjpeg = params.get('view') === 'mjpeg';
let token = params.get('token') || localStorage.getItem('sinkstream-token') || '';

function authHeaders() { return token ? { Authorization: 'Bearer ' + token } : {}; }
function withToken(url) { return token ? url + '?access_token=' + encodeURIComponent(token) : url; }

function say(text, isError) {
  const m = $('message');
  m.textContent = text || '';
  m.className = isError ? 'error' : '';
}

async function api(method, path, body) {
  const opts = { method, headers: authHeaders() };
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(path, opts);
  const j = await r.json().catch(() => ({}));
  if (r.status === 401) $('token-box').hidden = false;
  if (!r.ok) throw new Error((j.error && j.error.message) || r.status + ' ' + r.statusText);
  return j;
}

// ---- live view

function mp4Supported(mime) {
  return !forceMjpeg && window.MediaSource && MediaSource.isTypeSupported(mime);
}

function stopView() {
  if (state.media) {
    state.media.abort.abort();
    state.media = null;
  }
  const v = $('live');
  v.removeAttribute('src');
  v.load();
  $('mjpeg').removeAttribute('src');
  $('mjpeg').hidden = true;
  v.hidden = false;
}

function startMjpeg(id) {
  $('live').hidden = true;
  const img = $('mjpeg');
  img.hidden = false;
  img.src = withToken('/v1/sessions/' + id + '/live.mjpeg');
}

function startMp4(id, mime) {
  const v = $('live');
  const ms = new MediaSource();
  const media = { ms, sb: null, abort: new AbortController(), queue: [], lastEnd: 0 };
  state.media = media;
  v.src = URL.createObjectURL(ms);
  const pump = () => {
    if (!media.sb || media.sb.updating || !media.queue.length || ms.readyState !== 'open') return;
    const chunk = media.queue.shift();
    try {
      media.sb.appendBuffer(chunk);
    } catch (e) {
      if (e.name === 'QuotaExceededError') { // full: drop played video, append again after
        media.queue.unshift(chunk);
        trimBuffer(media, true);
      } else {
        say('live view: ' + e.message, true);
      }
    }
  };
  ms.addEventListener('sourceopen', async () => {
    media.sb = ms.addSourceBuffer(mime);
    media.sb.addEventListener('updateend', () => { followLiveEdge(media); pump(); });
    try {
      const r = await fetch('/v1/sessions/' + id + '/live.mp4',
                            { headers: authHeaders(), signal: media.abort.signal });
      if (!r.ok) throw new Error('live view: HTTP ' + r.status);
      const reader = r.body.getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        media.queue.push(value);
        pump();
      }
      // the stream ended (the session finished): play out what is buffered
      const end = () => { if (ms.readyState === 'open' && !media.sb.updating && !media.queue.length) ms.endOfStream(); else setTimeout(end, 200); };
      end();
    } catch (e) {
      if (e.name !== 'AbortError') say(e.message, true);
    }
  }, { once: true });
  watchFrames(v);
}

// Keep playback near the live edge. A chunk's frames arrive together (one
// fragment) and are shown over the chunk's duration, so right after an append
// the video buffered ahead of the playhead should be that fragment plus a
// little: what is beyond is delay the viewer adds (a stall while a chunk came
// late, a slow start, a hidden tab) to every later frame. It is played away
// slightly fast (no frame is dropped), or skipped when large. Also: start
// where data starts (a late join begins mid-stream), drop what was played
// long ago.
const LIVE_SLACK_S = 0.12;   // excess kept: jitter of the chunks' arrival
const LIVE_SKIP_S = 2.0;     // excess skipped at once instead of played fast
function trimBuffer(media, force) {
  const v = $('live');
  if (!media.sb || media.sb.updating || !media.sb.buffered.length) return;
  const start = media.sb.buffered.start(0);
  if (v.currentTime - start > (force ? 2 : 30)) media.sb.remove(start, v.currentTime - 1);
}

// After each append: how much more than the newest fragment is buffered ahead.
function followLiveEdge(media) {
  const v = $('live'), b = media.sb.buffered;
  if (!b.length) return;
  const end = b.end(b.length - 1), frag = Math.max(0, end - media.lastEnd);
  media.lastEnd = end;
  if (!frag) return; // not a new fragment (a remove)
  if (v.currentTime < b.start(b.length - 1)) { // joined mid-stream, or a gap
    v.currentTime = b.start(b.length - 1);
    return;
  }
  const excess = end - v.currentTime - frag;
  if (excess > LIVE_SKIP_S) {
    v.currentTime = end - frag; // the newest fragment starts with a keyframe
    v.playbackRate = 1;
  } else {
    // a proportional catch-up, until the next fragment says again: 0.3 s of excess
    // plays at 1.3x (a fragment that then comes late stalls, and the excess is 0)
    v.playbackRate = excess > LIVE_SLACK_S ? Math.min(1.5, 1 + excess) : 1;
  }
  state.liveExcess = excess;
}

setInterval(() => {
  const media = state.media, v = $('live');
  if (!media || !media.sb || !media.sb.buffered.length) return;
  const b = media.sb.buffered;
  if (v.currentTime < b.start(0)) v.currentTime = b.start(b.length - 1);
  if (v.paused) v.play().catch(() => {});
  trimBuffer(media, false);
}, 100);

// decode -> display delay of each shown frame: the frame's number comes from
// its media time, its decode time from the "chunk" events.
function decodeTime(frame) {
  for (let i = state.chunkTimes.length - 1; i >= 0; i--) {
    const c = state.chunkTimes[i];
    if (frame >= c.first && frame < c.first + c.n) return c.t;
  }
  return null;
}

function watchFrames(v) {
  if (!v.requestVideoFrameCallback) return;
  const onFrame = (now, meta) => {
    state.framesShown++;
    const frame = Math.round(meta.mediaTime * state.fps);
    const t = decodeTime(frame);
    if (t !== null) {
      const shown = performance.timeOrigin + (meta.expectedDisplayTime || now);
      state.latencies.push(shown - t);
      if (state.latencies.length > 2000) state.latencies.shift();
    }
    v.requestVideoFrameCallback(onFrame);
  };
  v.requestVideoFrameCallback(onFrame);
}

function latencySummary() {
  const l = state.latencies.slice(-200).sort((a, b) => a - b);
  if (!l.length) return null;
  return { p50: l[Math.floor(l.length / 2)], p90: l[Math.floor(l.length * 0.9)], n: l.length };
}

// ---- events and timeline

function addTimeline(frame, prompt, pending) {
  const li = document.createElement('li');
  const f = document.createElement('span');
  f.className = pending ? 'pending' : 'frame';
  f.textContent = pending ? 'queued' : 'frame ' + frame;
  li.append(f, ' ', document.createTextNode(prompt));
  $('timeline').append(li);
  li.scrollIntoView({ block: 'nearest' });
  return li;
}

function follow(id) {
  if (state.events) state.events.close();
  const es = new EventSource(withToken('/v1/sessions/' + id + '/events'));
  state.events = es;
  es.addEventListener('chunk', (e) => {
    const d = JSON.parse(e.data);
    state.chunkTimes.push({ first: d.first_frame, n: d.frames, t: d.t_ms });
    if (state.chunkTimes.length > 400) state.chunkTimes.shift();
  });
  es.addEventListener('prompt', (e) => {
    const d = JSON.parse(e.data);
    const li = d.request && state.pending.get(d.request);
    if (li) {
      li.remove();
      state.pending.delete(d.request);
    }
    addTimeline(d.frame, d.prompt + (d.mode === 'cut' ? ' (new shot)' : ''), false);
    if (d.request) say('prompt applied at frame ' + d.frame);
  });
  es.addEventListener('session-error', (e) => say(JSON.parse(e.data).message, true));
  es.addEventListener('end', () => { es.close(); refresh(); });
}

// ---- sessions

async function attach(id) {
  if (state.id === id) return;
  stopView();
  state.id = id;
  state.chunkTimes = [];
  state.latencies = [];
  state.pending.clear();
  $('timeline').replaceChildren();
  $('placeholder').hidden = true;
  for (const b of ['pause', 'resume', 'stop']) $(b).disabled = false;
  try {
    const s = await api('GET', '/v1/sessions/' + id);
    state.fps = s.fps_target || 16;
    follow(id);
    if (s.live && mp4Supported(s.live.mime)) startMp4(id, s.live.mime);
    else if (s.live) startMjpeg(id);
    showStatus(s);
  } catch (e) {
    say(e.message, true);
  }
  refresh();
}

function fmt(x, digits) { return x === undefined || x === null ? '–' : Number(x).toFixed(digits); }

function showStatus(s) {
  $('st-state').textContent = s.state + (s.error ? ' (' + s.error + ')' : '');
  $('st-frame').textContent = s.frame + (s.frames ? ' / ' + s.frames : '');
  $('st-fps').textContent = fmt(s.fps, 1) + ' (target ' + s.fps_target + ')';
  $('st-chunk').textContent = s.chunk_ms ? fmt(s.chunk_ms, 0) + ' ms' : '–';
  $('st-lag').textContent = s.lag_s > 0.05 ? fmt(s.lag_s, 1) + ' s behind real time' : 'on time';
  $('st-queued').textContent = s.queued_prompts;
  $('st-mem').textContent = s.memory_mib ? fmt(s.memory_mib, 0) + ' MiB' : '–';
  const l = latencySummary();
  $('st-latency').textContent = l ? fmt(l.p50, 0) + ' ms (p90 ' + fmt(l.p90, 0) + ')' : '–';
}

async function refresh() {
  try {
    const info = await api('GET', '/v1/server');
    if (!state.formFilled && info.defaults) { // the model's size and rate, once
      state.formFilled = true;
      $('width').value = info.defaults.width;
      $('height').value = info.defaults.height;
      $('fps').value = info.defaults.fps;
    }
    $('server').textContent = info.model + ' · ' + info.device + ' · ' + info.sessions + '/' + info.max_sessions + ' sessions';
    const list = await api('GET', '/v1/sessions');
    const ul = $('sessions');
    ul.replaceChildren();
    for (const s of list.sessions) {
      const li = document.createElement('li');
      li.textContent = s.state + ' · ' + s.prompt.slice(0, 40) + ' · ' + s.id.slice(0, 8);
      li.title = s.id;
      if (s.id === state.id) li.className = 'current';
      li.onclick = () => attach(s.id);
      ul.append(li);
    }
    if (state.id) {
      const cur = list.sessions.find((s) => s.id === state.id);
      if (cur) showStatus(cur);
      else { $('st-state').textContent = 'gone'; for (const b of ['pause', 'resume', 'stop']) $(b).disabled = true; }
    }
  } catch (e) {
    $('server').textContent = e.message;
  }
}
setInterval(refresh, 1000);

$('start-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const seconds = Number($('seconds').value);
  const body = {
    prompt: $('start-prompt').value,
    width: Number($('width').value), height: Number($('height').value),
    fps: Number($('fps').value), seed: Number($('seed').value), record: $('record').checked,
  };
  if (seconds > 0) body.seconds = seconds; else body.unbounded = true;
  try {
    const s = await api('POST', '/v1/sessions', body);
    say('started ' + s.id.slice(0, 8));
    await attach(s.id);
  } catch (err) {
    say(err.message, true);
  }
});

$('prompt-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const text = $('prompt').value.trim();
  if (!text || !state.id) { if (!state.id) say('start a session first', true); return; }
  try {
    const r = await api('POST', '/v1/sessions/' + state.id + '/prompt',
                        { prompt: text, mode: $('cut').checked ? 'cut' : 'switch' });
    state.pending.set(r.request, addTimeline(null, text, true));
    $('prompt').value = '';
    say('prompt queued');
  } catch (err) {
    say(err.message, true);
  }
});

for (const [b, path] of [['pause', 'pause'], ['resume', 'resume']])
  $(b).addEventListener('click', () => api('POST', '/v1/sessions/' + state.id + '/' + path).then(refresh).catch((e) => say(e.message, true)));
$('stop').addEventListener('click', async () => {
  try {
    await api('DELETE', '/v1/sessions/' + state.id);
    say('stopped');
  } catch (e) {
    say(e.message, true);
  }
  refresh();
});
$('token').addEventListener('change', () => {
  token = $('token').value;
  localStorage.setItem('sinkstream-token', token);
  refresh();
});

refresh();
