// The live notebook page: draws the server's snapshots and block updates
// (server-sent events), sends edits, runs and cancels. Every request
// carries the token of the page's own URL.
'use strict';
window.squallNotebookErrors = [];
window.addEventListener('error', e => window.squallNotebookErrors.push(String(e.message)));

const token = new URLSearchParams(location.search).get('token') || '';
const api = path => path + '?token=' + encodeURIComponent(token);
const blocksEl = document.getElementById('blocks');
const statusEl = document.getElementById('status');
const problemEl = document.getElementById('problem');
const cancelEl = document.getElementById('cancel');
const tip = document.getElementById('tooltip');
let generation = 0;

const NEW_SQL = '```sql\nSELECT 1 AS one\n```';
const NEW_TEXT = 'New text: Markdown.';

function showProblem(message) {
  problemEl.textContent = message || '';
  problemEl.hidden = !message;
}

function setStatus(text, running) {
  statusEl.textContent = text;
  cancelEl.hidden = !running;
  document.body.dataset.running = running ? 'true' : 'false';
}

async function post(path, body) {
  const response = await fetch(api(path), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body || {}),
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) showProblem(answer.problem || ('the server said ' + response.status));
  else showProblem('');
  return answer;
}

function edit(change) {
  return post('/api/edit', { generation, edit: change });
}

// Marks keep their tooltip text in a data attribute: the page's own
// tooltip shows it, not the browser's.
function prepareMarks(root) {
  root.querySelectorAll('svg.chart .mark').forEach(mark => {
    const title = mark.querySelector('title');
    if (title) { mark.dataset.tip = title.textContent; title.remove(); }
  });
}

function drawOutput(blockEl, state, html) {
  const output = blockEl.querySelector('.output');
  output.innerHTML = html;
  prepareMarks(output);
  blockEl.dataset.state = state;
  const progress = blockEl.querySelector('.progress');
  if (progress) progress.textContent = '';
}

function button(label, title, action) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = label;
  b.title = title;
  b.className = 'tool';
  b.addEventListener('click', action);
  return b;
}

function drawBlock(block, index) {
  const el = document.createElement('div');
  el.className = 'block';
  el.dataset.index = index;
  el.dataset.kind = block.kind;
  el.dataset.state = block.state;

  const source = document.createElement('textarea');
  source.className = 'source';
  source.spellcheck = false;
  source.value = block.source;
  source.rows = Math.max(2, block.source.split('\n').length);
  source.addEventListener('input', () => {
    source.rows = Math.max(2, source.value.split('\n').length);
  });
  source.addEventListener('keydown', e => {
    if (e.key === 'Enter' && e.shiftKey) {
      e.preventDefault();
      submit();
    } else if (e.key === 'Escape' && block.kind === 'prose') {
      el.classList.remove('editing');
    }
  });
  const submit = () => {
    if (source.value === block.source) return post('/api/run');
    return edit({ replace: { block: index, text: source.value } });
  };

  const tools = document.createElement('div');
  tools.className = 'tools';
  const progress = document.createElement('span');
  progress.className = 'progress';
  tools.append(
    progress,
    button('Run', 'Save and run (Shift+Enter)', submit),
    button('Cancel', 'Stop this cell', () => post('/api/cancel-cell', { generation, block: index })),
    button('+ SQL', 'Add a SQL cell below', () => edit({ insert: { after: index, text: NEW_SQL } })),
    button('+ Text', 'Add prose below', () => edit({ insert: { after: index, text: NEW_TEXT } })),
    button('Delete', 'Delete this block', () => edit({ delete: { block: index } })),
  );

  const output = document.createElement('div');
  output.className = 'output';
  if (block.kind === 'prose') {
    output.title = 'Double-click to edit';
    output.addEventListener('dblclick', () => { el.classList.add('editing'); source.focus(); });
  }
  el.append(tools, source, output);
  drawOutput(el, block.state, block.html);
  return el;
}

function drawSnapshot(snapshot) {
  generation = snapshot.generation;
  document.title = snapshot.title;
  blocksEl.replaceChildren(...snapshot.blocks.map(drawBlock));
  if (snapshot.blocks.length === 0) {
    blocksEl.append(button('+ SQL', 'Add a SQL cell', () => edit({ insert: { after: null, text: NEW_SQL } })));
  }
  showProblem(snapshot.problem ? 'the file does not parse: ' + snapshot.problem : '');
  setStatus(snapshot.running ? 'running' : '', snapshot.running);
  document.body.dataset.generation = String(generation);
  document.body.dataset.rendered = 'true';
}

function blockAt(index) {
  return blocksEl.querySelector('.block[data-index="' + index + '"]');
}

const events = new EventSource(api('/api/events'));
events.addEventListener('snapshot', e => drawSnapshot(JSON.parse(e.data)));
events.addEventListener('block', e => {
  const update = JSON.parse(e.data);
  if (update.generation !== generation) return;
  const el = blockAt(update.index);
  if (el) drawOutput(el, update.state, update.html);
});
events.addEventListener('progress', e => {
  const update = JSON.parse(e.data);
  if (update.generation !== generation) return;
  const el = blockAt(update.index);
  if (!el) return;
  el.dataset.state = 'running';
  el.querySelector('.progress').textContent = update.planned > 0
    ? update.done + '/' + update.planned + ' tasks'
    : 'planning';
  setStatus('running', true);
});
events.addEventListener('run_ended', e => {
  const ended = JSON.parse(e.data);
  if (ended.generation !== generation) return;
  setStatus(ended.cancelled
    ? 'cancelled'
    : 'ran in ' + (ended.elapsed_ms / 1000).toFixed(1) + ' s' +
      (ended.cached ? ' · ' + ended.cached + ' from cache' : '') +
      (ended.failures ? ' · ' + ended.failures + ' did not run to their end' : ''), false);
});
events.addEventListener('problem', e => showProblem(JSON.parse(e.data).message));
events.addEventListener('error', () => setStatus('not connected: is squall notebook serve still running?', false));

cancelEl.addEventListener('click', () => post('/api/cancel'));

blocksEl.addEventListener('mouseover', e => {
  const mark = e.target.closest && e.target.closest('svg.chart .mark');
  if (!mark || !mark.dataset.tip) return;
  tip.textContent = mark.dataset.tip;
  tip.hidden = false;
});
blocksEl.addEventListener('mousemove', e => {
  tip.style.left = (e.clientX + 12) + 'px';
  tip.style.top = (e.clientY + 12) + 'px';
});
blocksEl.addEventListener('mouseout', e => {
  if (e.target.closest && e.target.closest('svg.chart .mark')) tip.hidden = true;
});
