// Issue 17 point 14: on the first case of a visit the reading viewer's code (Cornerstone, about 0.9 MB
// compressed) is still on the wire and then compiled for several hundred milliseconds. This module is in
// the small entry chunk: it claims the task and fetches the image shown first meanwhile; the viewer hands
// those bytes to Cornerstone's loader (prefetchPart10Instance) instead of requesting them after its start-up.
import { get, post } from './api.js';

/** URL of one instance's DICOM object (what Cornerstone's wadouri loader requests for it). */
export function instanceUrl(itemId, position) {
  return `${location.origin}/api/items/${itemId}/instances/${position}/file`;
}

async function fetchBytes(url) {
  const res = await fetch(url, { credentials: 'same-origin' });
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return res.arrayBuffer();
}

/**
 * Starts the case a task page shows: `data` is what viewerPage would have asked for ({task, remaining});
 * `firstImage` resolves to {baseImageId, bytes} of the first slice's DICOM object, or null (no image, or
 * the fetch failed: the loader then asks for it itself). Rejections of `data` are the viewer's to report.
 */
export function startCase(params) {
  const id = params.get('id');
  const pid = params.get('project');
  const data = id
    ? get(`/api/tasks/${id}`).then((task) => ({ task, remaining: null }))
    : post(`/api/tasks/next${pid ? `?project_id=${pid}` : ''}`);
  data.catch(() => {});
  const firstImage = data.then(async (d) => {
    const inst = d.task?.item?.instances?.[0];
    if (!inst) return null;
    const url = instanceUrl(d.task.item.id, inst.position);
    return { baseImageId: `wadouri:${url}`, bytes: await fetchBytes(url) };
  }).catch(() => null);
  return { data, firstImage };
}
