// Decode and greedy NMS of the YOLOv8 head on the GPU, with no host synchronisation and no
// allocation, so that the whole detection end is captured in one CUDA graph with the network.
//
// The rule is core/postprocess.py's (its module docstring and PostprocessConfig):
//   * score = max over classes (first maximum: the lower class id on equal scores);
//     candidate when score >= conf (float32 compare);
//   * candidates ordered by score, equal scores in anchor order (what the NumPy path's stable
//     sort gives), cut to top_k;
//   * greedy NMS: a candidate is suppressed when its IoU with a kept, better candidate of the
//     same class (any class when agnostic) is > iou (IoU in double from the float32 boxes,
//     iou the float32 threshold widened to double, as the NumPy path computes it);
//   * at most max_det kept, best first.
// Run-time thresholds are read from a small device array (params), so changing them needs no
// new graph: params = {conf, iou, agnostic (0/1), top_k, max_det}, all float32.
//
// nms_candidates compacts each image's candidates into a list (atomic, any order); nms_rank
// gives each its rank in the rule's order by counting the candidates before it (n^2
// comparisons: a few hundred candidates is the usual case, 8400 at conf ~0 still ~0.1 ms)
// and writes it at that rank, cut to K. nms_mask computes, for each pair i < j of the first
// n, whether i suppresses j, as a bit matrix [K, ceil(K/64)] of 64-bit words (torchvision's
// CUDA NMS layout); nms_scan walks it with one block per image, 64 candidates at a time:
// thread 0 resolves a word sequentially from the diagonal words, then all threads OR the kept
// rows into the later words. The head is float32 or float16 (is_half), read as such.
// With appearance embeddings, nms_scan also writes each kept detection's anchor index after
// the classes and nms_gather_embeddings copies that anchor's embedding row into the same
// packed row, so one device-to-host copy still fetches everything.
// Compile with --fmad=false: IoU's a + b - w * h must not become an FMA, or results would
// differ from the NumPy reference in the last bit.

#define NEG_INF (__int_as_float(0xff800000))

enum Param { P_CONF = 0, P_IOU = 1, P_AGNOSTIC = 2, P_TOP_K = 3, P_MAX_DET = 4 };

// Element idx of the head as float (float16 converted exactly, as torch's .float() does).
__device__ __forceinline__ float head_at(const void* head, size_t idx, int is_half) {
    if (is_half) {
        const unsigned short h = ((const unsigned short*)head)[idx];
        float f;
        asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
        return f;
    }
    return ((const float*)head)[idx];
}

// One thread per (image, anchor): best class score and its class; candidates are appended to
// the image's list (list_len must be zero before the launch).
extern "C" __global__ void nms_candidates(const void* __restrict__ head, int is_half, int rows,
                                          int num_classes, int anchors, const float* __restrict__ params,
                                          float* __restrict__ score, int* __restrict__ cls,
                                          int* __restrict__ list, int* __restrict__ list_len) {
    const int a = blockIdx.x * blockDim.x + threadIdx.x;
    const int b = blockIdx.y;
    if (a >= anchors) return;
    const size_t base = ((size_t)b * rows + 4) * anchors + a;
    float best = head_at(head, base, is_half);
    int best_c = 0;
    for (int c = 1; c < num_classes; ++c) {
        const float s = head_at(head, base + (size_t)c * anchors, is_half);
        if (s > best) {  // strict: the first maximum wins, as NumPy's argmax
            best = s;
            best_c = c;
        }
    }
    const size_t o = (size_t)b * anchors + a;
    score[o] = best;
    cls[o] = best_c;
    if (best >= params[P_CONF]) list[(size_t)b * anchors + atomicAdd(&list_len[b], 1)] = a;
}

// One thread per listed candidate: its rank among the image's candidates (higher score first,
// then lower anchor), and, if below K, its xyxy box, score and class written at that rank.
// Block 0 also writes the image's count n = min(#candidates, K, top_k).
extern "C" __global__ void nms_rank(const void* __restrict__ head, int is_half, int rows, int anchors,
                                    const float* __restrict__ score, const int* __restrict__ cls,
                                    const int* __restrict__ list, const int* __restrict__ list_len,
                                    const float* __restrict__ params, int K, float* __restrict__ cand_box,
                                    float* __restrict__ cand_score, int* __restrict__ cand_cls,
                                    int* __restrict__ cand_anchor, int* __restrict__ count) {
    __shared__ float s_score[256];
    __shared__ int s_anchor[256];
    const int b = blockIdx.y;
    const int n = list_len[b];
    if (blockIdx.x == 0 && threadIdx.x == 0) count[b] = min(min(n, K), (int)params[P_TOP_K]);
    if ((int)(blockIdx.x * blockDim.x) >= n) return;  // uniform over the block
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    const float* scores = score + (size_t)b * anchors;
    const int* mine = list + (size_t)b * anchors;
    const int a = i < n ? mine[i] : 0;
    const float s = i < n ? scores[a] : 0.0f;
    int rank = 0;
    for (int t0 = 0; t0 < n; t0 += 256) {
        __syncthreads();
        if (t0 + (int)threadIdx.x < n) {
            const int other = mine[t0 + threadIdx.x];
            s_anchor[threadIdx.x] = other;
            s_score[threadIdx.x] = scores[other];
        }
        __syncthreads();
        const int tn = min(256, n - t0);
        for (int t = 0; t < tn; ++t) {
            const float so = s_score[t];
            rank += (so > s) || (so == s && s_anchor[t] < a);
        }
    }
    if (i >= n || rank >= K) return;
    const size_t h = (size_t)b * rows * anchors + a;
    const float cx = head_at(head, h, is_half), cy = head_at(head, h + anchors, is_half);
    const float w = head_at(head, h + 2 * (size_t)anchors, is_half);
    const float hh = head_at(head, h + 3 * (size_t)anchors, is_half);
    const float hw = w / 2.0f, hh2 = hh / 2.0f;  // exact halving, as the NumPy path's w / 2
    float* box = cand_box + ((size_t)b * K + rank) * 4;
    box[0] = cx - hw;
    box[1] = cy - hh2;
    box[2] = cx + hw;
    box[3] = cy + hh2;
    cand_score[(size_t)b * K + rank] = s;
    cand_cls[(size_t)b * K + rank] = cls[(size_t)b * anchors + a];
    cand_anchor[(size_t)b * K + rank] = a;
}

// Blocks of 64 threads stride over the upper-triangle 64 x 64 tiles of the first n
// candidates of image blockIdx.y; thread t of tile (rb, cb) writes word cb of row rb * 64 + t.
extern "C" __global__ void nms_mask(const float* __restrict__ cand_box, const int* __restrict__ cand_cls,
                                    const int* __restrict__ count, const float* __restrict__ params, int K,
                                    int nwords, unsigned long long* __restrict__ mask) {
    __shared__ float sbox[64][4];
    __shared__ int scls[64];
    const int b = blockIdx.y;
    const int n = count[b];
    const int used = (n + 63) / 64;
    const double thr = (double)params[P_IOU];
    const bool agnostic = params[P_AGNOSTIC] != 0.0f;
    const float* boxes = cand_box + (size_t)b * K * 4;
    const int* classes = cand_cls + (size_t)b * K;
    for (int tile = blockIdx.x; tile < used * used; tile += gridDim.x) {
        const int rb = tile / used, cb = tile % used;
        if (cb < rb) continue;  // uniform over the block
        __syncthreads();        // the previous tile's readers are done with the shared boxes
        const int j0 = cb * 64;
        if (j0 + (int)threadIdx.x < n) {
            const float* p = boxes + (size_t)(j0 + threadIdx.x) * 4;
            sbox[threadIdx.x][0] = p[0];
            sbox[threadIdx.x][1] = p[1];
            sbox[threadIdx.x][2] = p[2];
            sbox[threadIdx.x][3] = p[3];
            scls[threadIdx.x] = classes[j0 + threadIdx.x];
        }
        __syncthreads();
        const int i = rb * 64 + threadIdx.x;
        if (i >= n) continue;
        const double x1 = boxes[(size_t)i * 4], y1 = boxes[(size_t)i * 4 + 1];
        const double x2 = boxes[(size_t)i * 4 + 2], y2 = boxes[(size_t)i * 4 + 3];
        const double area = (x2 - x1) * (y2 - y1);
        const int ci = classes[i];
        const int jend = min(64, n - j0);
        unsigned long long bits = 0ull;
        for (int t = (cb == rb) ? (int)threadIdx.x + 1 : 0; t < jend; ++t) {
            if (!agnostic && scls[t] != ci) continue;
            const double bx1 = sbox[t][0], by1 = sbox[t][1], bx2 = sbox[t][2], by2 = sbox[t][3];
            const double w = fmax(fmin(x2, bx2) - fmax(x1, bx1), 0.0);
            const double h = fmax(fmin(y2, by2) - fmax(y1, by1), 0.0);
            const double inter = w * h;
            const double iou = inter / (area + (bx2 - bx1) * (by2 - by1) - inter);  // NaN: kept
            if (iou > thr) bits |= 1ull << t;
        }
        mask[((size_t)b * K + i) * nwords + cb] = bits;
    }
}

// One block per image (blockDim.x >= 64). Output per image, a row of `row` float32 words:
// [count (int bits), boxes M x 4, scores M, classes M (int bits)], zero past the count, then
// (with_anchor) the kept candidates' anchor indices M (int bits, -1 past the count).
extern "C" __global__ void nms_scan(const unsigned long long* __restrict__ mask,
                                    const float* __restrict__ cand_box, const float* __restrict__ cand_score,
                                    const int* __restrict__ cand_cls, const int* __restrict__ cand_anchor,
                                    const int* __restrict__ count, const float* __restrict__ params, int K,
                                    int nwords, int M, int row, int with_anchor, float* __restrict__ out) {
    extern __shared__ unsigned long long removed[];  // nwords words
    __shared__ unsigned long long diag[64];
    __shared__ unsigned long long s_keep;
    __shared__ int s_kept;
    const int b = blockIdx.x;
    const int n = count[b];
    const int used = (n + 63) / 64;
    const int max_det = min(M, (int)params[P_MAX_DET]);
    const unsigned long long* m = mask + (size_t)b * K * nwords;
    float* o = out + (size_t)b * row;
    float* o_box = o + 1;
    float* o_score = o + 1 + 4 * M;
    float* o_cls = o + 1 + 5 * M;
    float* o_anchor = o + 1 + 6 * M;  // written only with_anchor (the row is that long then)
    for (int t = threadIdx.x; t < used; t += blockDim.x) removed[t] = 0ull;
    if (threadIdx.x == 0) s_kept = 0;
    __syncthreads();
    for (int w = 0; w < used; ++w) {
        const int before = s_kept;
        if (before >= max_det) break;  // every thread reads the same value: a uniform exit
        const int row0 = w * 64;
        const int rows = min(64, n - row0);
        if (threadIdx.x < 64) diag[threadIdx.x] = (int)threadIdx.x < rows ? m[(size_t)(row0 + threadIdx.x) * nwords + w] : 0ull;
        __syncthreads();
        if (threadIdx.x == 0) {
            unsigned long long cur = removed[w], keep = 0ull;
            int kept = before;
            for (int j = 0; j < rows && kept < max_det; ++j) {
                if (!((cur >> j) & 1ull)) {
                    keep |= 1ull << j;
                    cur |= diag[j];
                    ++kept;
                }
            }
            s_keep = keep;
            s_kept = kept;
        }
        __syncthreads();
        const unsigned long long keep = s_keep;
        if (threadIdx.x < 64 && ((keep >> threadIdx.x) & 1ull)) {
            const int j = threadIdx.x;
            const int pos = before + __popcll(keep & ((1ull << j) - 1ull));
            const size_t c = (size_t)b * K + row0 + j;
            o_box[4 * pos] = cand_box[4 * c];
            o_box[4 * pos + 1] = cand_box[4 * c + 1];
            o_box[4 * pos + 2] = cand_box[4 * c + 2];
            o_box[4 * pos + 3] = cand_box[4 * c + 3];
            o_score[pos] = cand_score[c];
            o_cls[pos] = __int_as_float(cand_cls[c]);
            if (with_anchor) o_anchor[pos] = __int_as_float(cand_anchor[c]);
        }
        for (int t = w + 1 + threadIdx.x; t < used; t += blockDim.x) {
            unsigned long long r = removed[t];
            unsigned long long bits = keep;
            while (bits) {
                const int j = __ffsll((long long)bits) - 1;
                bits &= bits - 1ull;
                r |= m[(size_t)(row0 + j) * nwords + t];
            }
            removed[t] = r;
        }
        __syncthreads();
    }
    const int kept = s_kept;
    if (threadIdx.x == 0) o[0] = __int_as_float(kept);
    for (int p = kept + threadIdx.x; p < M; p += blockDim.x) {
        o_box[4 * p] = o_box[4 * p + 1] = o_box[4 * p + 2] = o_box[4 * p + 3] = 0.0f;
        o_score[p] = 0.0f;
        o_cls[p] = __int_as_float(0);
        if (with_anchor) o_anchor[p] = __int_as_float(-1);
    }
}

// Grid (M, B), any block size: slot m of image b gets the embedding row [D] of its kept
// anchor (written by nms_scan after the classes) from emb [B, anchors, D] (float32), placed
// after the anchors in the packed row; zeros past the count.
extern "C" __global__ void nms_gather_embeddings(const float* __restrict__ emb, int anchors, int D, int M,
                                                 int row, float* __restrict__ out) {
    const int m = blockIdx.x, b = blockIdx.y;
    float* o = out + (size_t)b * row;
    const int n = __float_as_int(o[0]);
    const int a = __float_as_int(o[1 + 6 * M + m]);
    float* dst = o + 1 + 7 * (size_t)M + (size_t)m * D;
    const bool kept = m < n && a >= 0 && a < anchors;
    const float* src = emb + ((size_t)b * anchors + (kept ? a : 0)) * D;
    for (int d = threadIdx.x; d < D; d += blockDim.x) dst[d] = kept ? src[d] : 0.0f;
}
