// Fused letterbox preprocessing: one launch for a whole batch.
//
// Per output pixel: bilinear resize of the source (aspect kept, centred, pad value outside),
// encoding conversion to RGB (bgr8, rgb8, mono8, bgra8, rgba8, yuv422_yuy2), scaling to
// [0, 1], HWC -> CHW, float32 or float16. Each image has its own size and encoding, read from
// a small per-image parameter array, so one launch covers a batch of mixed cameras.
//
// It reproduces OpenCV's cv::resize(INTER_LINEAR) on uint8, the CPU reference, step by step:
//   * source coordinate  src = (dst + 0.5) * scale - 0.5, scale = 1 / (resized / source),
//     computed in double then rounded to float as OpenCV does; taps clamped at the borders
//     (a coordinate below 0 or at/after the last pixel uses that edge pixel alone);
//   * fixed-point weights rint(w * 2048) (INTER_RESIZE_COEF_BITS = 11), horizontal sums in
//     int32, and the vertical step in the form of OpenCV's SIMD path
//     (((b0 * (r0 >> 4)) >> 16) + ((b1 * (r1 >> 4)) >> 16) + 2) >> 2, which is what x86 and
//     ARM builds run on all but a row's scalar tail; the tail rounds (sum + 2^21) >> 22 and
//     can differ by one grey level, so the match is within 1/255, exact almost everywhere;
//   * YUYV is converted per source pixel with OpenCV's BT.601 fixed-point constants
//     (COLOR_YUV2RGB_YUY2) before interpolation, as the CPU path converts before resizing.
// Compile with --fmad=false so the coordinate arithmetic is not fused into FMAs.
//
// No #include: NVRTC compiles this without the toolkit's headers; float -> half uses PTX.

struct ImageParams {
    unsigned long long src_offset;  // byte offset of this image in the input buffer
    int src_w, src_h, src_step, encoding;
    int resized_w, resized_h, pad_x, pad_y;
    double scale_x, scale_y;  // source / resized, per axis, as cv::resize computes it
};

enum Encoding { ENC_BGR8 = 0, ENC_RGB8 = 1, ENC_MONO8 = 2, ENC_BGRA8 = 3, ENC_RGBA8 = 4, ENC_YUYV = 5 };

__device__ __forceinline__ int sat_u8(int v) { return v < 0 ? 0 : (v > 255 ? 255 : v); }

// One source pixel as R, G, B integers.
__device__ __forceinline__ void fetch_rgb(const unsigned char* __restrict__ row, int x, int enc, int& r,
                                          int& g, int& b) {
    switch (enc) {
        case ENC_BGR8: {
            const unsigned char* p = row + 3 * x;
            b = p[0]; g = p[1]; r = p[2];
            break;
        }
        case ENC_RGB8: {
            const unsigned char* p = row + 3 * x;
            r = p[0]; g = p[1]; b = p[2];
            break;
        }
        case ENC_MONO8: {
            r = g = b = row[x];
            break;
        }
        case ENC_BGRA8: {
            const unsigned char* p = row + 4 * x;
            b = p[0]; g = p[1]; r = p[2];
            break;
        }
        case ENC_RGBA8: {
            const unsigned char* p = row + 4 * x;
            r = p[0]; g = p[1]; b = p[2];
            break;
        }
        default: {  // ENC_YUYV: macropixel Y0 U Y1 V
            const unsigned char* p = row + 4 * (x >> 1);
            const int y = p[(x & 1) * 2];
            const int u = int(p[1]) - 128;
            const int v = int(p[3]) - 128;
            const int yy = max(0, y - 16) * 1220542;  // ITUR_BT_601_CY, SHIFT 20
            const int half = 1 << 19;
            r = sat_u8((yy + half + 1673527 * v) >> 20);
            g = sat_u8((yy + half - 852492 * v - 409993 * u) >> 20);
            b = sat_u8((yy + half + 2116026 * u) >> 20);
            break;
        }
    }
}

// Taps and fixed-point weights of one output coordinate, as cv::resize's coefficient tables.
__device__ __forceinline__ void taps(int d, double scale, int src_len, int& s0, int& s1, int& w0, int& w1) {
    float f = (float)((d + 0.5) * scale - 0.5);
    int s = (int)floorf(f);
    f -= (float)s;
    if (s < 0) {
        s = 0;
        f = 0.f;
    }
    if (s >= src_len - 1) {
        s = src_len - 1;
        f = 0.f;
    }
    s0 = s;
    s1 = min(s + 1, src_len - 1);
    w0 = __float2int_rn((1.f - f) * 2048.f);
    w1 = __float2int_rn(f * 2048.f);
}

__device__ __forceinline__ int vertical(int r0, int r1, int b0, int b1) {
    return sat_u8((((b0 * (r0 >> 4)) >> 16) + ((b1 * (r1 >> 4)) >> 16) + 2) >> 2);
}

__device__ __forceinline__ void store(float* dst, size_t i, float v) { dst[i] = v; }

__device__ __forceinline__ void store(unsigned short* dst, size_t i, float v) {
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(v));
    dst[i] = h;
}

template <typename T>
__device__ __forceinline__ void letterbox(const unsigned char* __restrict__ src,
                                          const ImageParams* __restrict__ params, T* __restrict__ dst,
                                          int dst_w, int dst_h, int pad_value) {
    const int x = blockIdx.x * blockDim.x + threadIdx.x;
    const int y = blockIdx.y * blockDim.y + threadIdx.y;
    const int n = blockIdx.z;
    if (x >= dst_w || y >= dst_h) return;
    const ImageParams p = params[n];
    const size_t plane = (size_t)dst_w * dst_h;
    const size_t out = (size_t)n * 3 * plane + (size_t)y * dst_w + x;
    const int dx = x - p.pad_x;
    const int dy = y - p.pad_y;
    if (dx < 0 || dy < 0 || dx >= p.resized_w || dy >= p.resized_h) {
        const float v = (float)pad_value / 255.0f;
        store(dst, out, v);
        store(dst, out + plane, v);
        store(dst, out + 2 * plane, v);
        return;
    }
    int sx0, sx1, a0, a1, sy0, sy1, b0, b1;
    taps(dx, p.scale_x, p.src_w, sx0, sx1, a0, a1);
    taps(dy, p.scale_y, p.src_h, sy0, sy1, b0, b1);
    const unsigned char* img = src + p.src_offset;
    const unsigned char* row0 = img + (size_t)sy0 * p.src_step;
    const unsigned char* row1 = img + (size_t)sy1 * p.src_step;
    int r00, g00, b00, r01, g01, b01, r10, g10, b10, r11, g11, b11;
    fetch_rgb(row0, sx0, p.encoding, r00, g00, b00);
    fetch_rgb(row0, sx1, p.encoding, r01, g01, b01);
    fetch_rgb(row1, sx0, p.encoding, r10, g10, b10);
    fetch_rgb(row1, sx1, p.encoding, r11, g11, b11);
    const int r = vertical(r00 * a0 + r01 * a1, r10 * a0 + r11 * a1, b0, b1);
    const int g = vertical(g00 * a0 + g01 * a1, g10 * a0 + g11 * a1, b0, b1);
    const int b = vertical(b00 * a0 + b01 * a1, b10 * a0 + b11 * a1, b0, b1);
    store(dst, out, (float)r / 255.0f);
    store(dst, out + plane, (float)g / 255.0f);
    store(dst, out + 2 * plane, (float)b / 255.0f);
}

extern "C" __global__ void letterbox_f32(const unsigned char* __restrict__ src,
                                         const ImageParams* __restrict__ params, float* __restrict__ dst,
                                         int dst_w, int dst_h, int pad_value) {
    letterbox<float>(src, params, dst, dst_w, dst_h, pad_value);
}

extern "C" __global__ void letterbox_f16(const unsigned char* __restrict__ src,
                                         const ImageParams* __restrict__ params,
                                         unsigned short* __restrict__ dst, int dst_w, int dst_h,
                                         int pad_value) {
    letterbox<unsigned short>(src, params, dst, dst_w, dst_h, pad_value);
}
