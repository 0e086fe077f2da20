// Matching of one image's detections to its ground truth, in the browser, so the score slider
// needs no round trip. The same rule as ssd.evaluate.match_detections (COCOeval at one IoU):
// detections scoring >= the cut, by descending score (ties: server order), each take the
// unmatched ground truth of their class with the highest IoU if it is >= the IoU threshold.

/**
 * @param {{score: number, label: number}[]} dets detections of one image
 * @param {{label: number}[]} gts ground truths of the image
 * @param {number[][]} iou [D][G] IoU of every detection with every ground truth (from the server)
 * @returns {{status: (string|null)[], matchedGt: number[], gtMatched: boolean[]}} status "tp",
 *   "fp", or null below the cut; matchedGt the ground truth a TP took (-1 otherwise); gtMatched
 *   false for a missed ground truth.
 */
export function matchDetections(dets, gts, iou, { score = 0, iouThreshold = 0.5 } = {}) {
  const status = dets.map(() => null);
  const matchedGt = dets.map(() => -1);
  const gtMatched = gts.map(() => false);
  const order = dets.map((_, i) => i).filter((i) => dets[i].score >= score);
  order.sort((a, b) => dets[b].score - dets[a].score); // Array.prototype.sort is stable
  for (const d of order) {
    let best = -1;
    let bestIou = -1;
    for (let g = 0; g < gts.length; g++) {
      if (gtMatched[g] || gts[g].label !== dets[d].label) continue;
      if (iou[d][g] > bestIou) {
        bestIou = iou[d][g];
        best = g;
      }
    }
    if (best >= 0 && bestIou >= iouThreshold) {
      gtMatched[best] = true;
      matchedGt[d] = best;
      status[d] = "tp";
    } else {
      status[d] = "fp";
    }
  }
  return { status, matchedGt, gtMatched };
}
