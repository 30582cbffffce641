// Fused letterbox preprocessing: one launch for a whole batch.
//
// Per output pixel: bilinear resize of the source (aspect kept, centred, pad value outside),
// encoding conversion to RGB, scaling to [0, 1], HWC -> CHW, float32 or float16. Each image
// has its own size and encoding, read from a small per-image parameter array, so one launch
// covers a batch of mixed cameras. Encodings: bgr8, rgb8, mono8, bgra8, rgba8, UYVY (ROS
// yuv422), YUYV (yuv422_yuy2), nv12, nv21, the four Bayer mosaics and 16-bit grey in either
// byte order.
//
// It reproduces OpenCV's cv::resize(INTER_LINEAR) on uint8, the CPU reference, step by step:
//   * source coordinate  src = (dst + 0.5) * scale - 0.5, scale = 1 / (resized / source),
//     computed in double then rounded to float as OpenCV does; taps clamped at the borders
//     (a coordinate below 0 or at/after the last pixel uses that edge pixel alone);
//   * fixed-point weights rint(w * 2048) (INTER_RESIZE_COEF_BITS = 11), horizontal sums in
//     int32, and the vertical step in the form of OpenCV's SIMD path
//     (((b0 * (r0 >> 4)) >> 16) + ((b1 * (r1 >> 4)) >> 16) + 2) >> 2, which is what x86 and
//     ARM builds run on all but a row's scalar tail; the tail rounds (sum + 2^21) >> 22 and
//     can differ by one grey level, so the match is within 1/255, exact almost everywhere.
// The CPU path converts the whole frame with cv::cvtColor before resizing; here each tap of
// the resize converts its own source pixel with the same integer arithmetic, so the result is
// the same with no intermediate image and no extra pass:
//   * YUV (4:2:2 and 4:2:0): OpenCV's BT.601 limited-range fixed point (ITUR_BT_601_*,
//     SHIFT 20), as COLOR_YUV2RGB_UYVY/_YUY2/_NV12/_NV21; a pixel takes the chroma of its pair
//     (4:2:2) or its 2x2 block (4:2:0) with no chroma interpolation, as OpenCV does;
//   * Bayer: OpenCV's bilinear demosaic (COLOR_Bayer*2RGB): the pixel's own colour, the
//     rounded mean of its 2 or 4 neighbours of each other colour; the 1-pixel border copies
//     its inner neighbour, as OpenCV fills it (images under 3x3 are refused on the host);
//   * 16-bit grey: v >> 8, i.e. the high byte, so byte order only picks which byte.
// Compile with --fmad=false so the coordinate arithmetic is not fused into FMAs.
//
// No #include: NVRTC compiles this without the toolkit's headers; float -> half uses PTX.

#define LB_DEVICE __device__ __forceinline__

struct ImageParams {
    unsigned long long src_offset;  // byte offset of this image in the input buffer
    int src_w, src_h, src_step, encoding;
    int resized_w, resized_h, pad_x, pad_y;
    double scale_x, scale_y;  // source / resized, per axis, as cv::resize computes it
};

// Keep in step with ENCODING_CODES in preprocess_cuda.py.
enum Encoding {
    ENC_BGR8 = 0,
    ENC_RGB8 = 1,
    ENC_MONO8 = 2,
    ENC_BGRA8 = 3,
    ENC_RGBA8 = 4,
    ENC_YUYV = 5,
    ENC_UYVY = 6,
    ENC_NV12 = 7,
    ENC_NV21 = 8,
    ENC_BAYER_RGGB = 9,
    ENC_BAYER_BGGR = 10,
    ENC_BAYER_GBRG = 11,
    ENC_BAYER_GRBG = 12,
    ENC_MONO16_LE = 13,
    ENC_MONO16_BE = 14,
};

LB_DEVICE int sat_u8(int v) { return v < 0 ? 0 : (v > 255 ? 255 : v); }
LB_DEVICE int lb_min(int a, int b) { return a < b ? a : b; }
LB_DEVICE int lb_max(int a, int b) { return a > b ? a : b; }

// OpenCV's YUV -> RGB (color_yuv.simd.hpp: uvToRGBuv, yRGBuvToRGBA), ITUR_BT_601_SHIFT = 20.
LB_DEVICE void yuv_to_rgb(int y, int u, int v, int& r, int& g, int& b) {
    u -= 128;
    v -= 128;
    const int yy = lb_max(0, y - 16) * 1220542;  // ITUR_BT_601_CY
    const int half = 1 << 19;
    r = sat_u8((yy + half + 1673527 * v) >> 20);               // CVR
    g = sat_u8((yy + half - 852492 * v - 409993 * u) >> 20);   // CVG, CUG
    b = sat_u8((yy + half + 2116026 * u) >> 20);               // CUB
}

// OpenCV's bilinear demosaic (demosaicing.cpp, Bayer2RGB_Invoker) at one pixel.
LB_DEVICE void bayer_rgb(const unsigned char* img, int step, int w, int h, int x, int y, int enc,
                         int& r, int& g, int& b) {
    // Where R sits in the 2x2 tile: rggb (0, 0), bggr (1, 1), gbrg (0, 1), grbg (1, 0).
    const int k = enc - ENC_BAYER_RGGB;
    const int rx = (k == 1 || k == 3) ? 1 : 0;
    const int ry = (k == 1 || k == 2) ? 1 : 0;
    x = lb_min(lb_max(x, 1), w - 2);  // the border repeats its inner neighbour
    y = lb_min(lb_max(y, 1), h - 2);
    const unsigned char* m = img + (long long)y * step + x;
    const int c = m[0];
    const int cross = (m[-step] + m[step] + m[-1] + m[1] + 2) >> 2;
    const int diag = (m[-step - 1] + m[-step + 1] + m[step - 1] + m[step + 1] + 2) >> 2;
    const int hor = (m[-1] + m[1] + 1) >> 1;
    const int ver = (m[-step] + m[step] + 1) >> 1;
    const bool r_col = (x & 1) == rx, r_row = (y & 1) == ry;
    if (r_col && r_row) {  // red pixel
        r = c; g = cross; b = diag;
    } else if (!r_col && !r_row) {  // blue pixel
        r = diag; g = cross; b = c;
    } else if (r_row) {  // green between reds (left/right), blues above/below
        r = hor; g = c; b = ver;
    } else {  // green between blues
        r = ver; g = c; b = hor;
    }
}

// One source pixel (x, y) as R, G, B integers. img: the image's first byte, step: bytes per
// buffer row, w, h: the image's size in pixels.
LB_DEVICE void fetch_rgb(const unsigned char* __restrict__ img, int step, int w, int h, int x, int y,
                         int enc, int& r, int& g, int& b) {
    const unsigned char* row = img + (long long)y * step;
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
        case ENC_YUYV: {  // macropixel Y0 U Y1 V
            const unsigned char* p = row + 4 * (x >> 1);
            yuv_to_rgb(p[(x & 1) * 2], p[1], p[3], r, g, b);
            break;
        }
        case ENC_UYVY: {  // macropixel U Y0 V Y1
            const unsigned char* p = row + 4 * (x >> 1);
            yuv_to_rgb(p[1 + (x & 1) * 2], p[0], p[2], r, g, b);
            break;
        }
        case ENC_NV12:
        case ENC_NV21: {  // Y plane, then h / 2 rows of interleaved UV (NV21: VU)
            const unsigned char* uv = img + (long long)(h + (y >> 1)) * step + (x & ~1);
            const int u = enc == ENC_NV12 ? uv[0] : uv[1];
            const int v = enc == ENC_NV12 ? uv[1] : uv[0];
            yuv_to_rgb(row[x], u, v, r, g, b);
            break;
        }
        case ENC_MONO16_LE: {  // v >> 8: the high byte
            r = g = b = row[2 * x + 1];
            break;
        }
        case ENC_MONO16_BE: {
            r = g = b = row[2 * x];
            break;
        }
        default: {  // ENC_BAYER_*
            bayer_rgb(img, step, w, h, x, y, enc, r, g, b);
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

#ifndef LETTERBOX_HOST_EMULATION  // the host build of test_encodings_kernel.py has no PTX
__device__ __forceinline__ void store(unsigned short* dst, size_t i, float v) {
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(v));
    dst[i] = h;
}
#endif

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
    const int st = p.src_step, sw = p.src_w, sh = p.src_h, enc = p.encoding;
    int r00, g00, b00, r01, g01, b01, r10, g10, b10, r11, g11, b11;
    fetch_rgb(img, st, sw, sh, sx0, sy0, enc, r00, g00, b00);
    fetch_rgb(img, st, sw, sh, sx1, sy0, enc, r01, g01, b01);
    fetch_rgb(img, st, sw, sh, sx0, sy1, enc, r10, g10, b10);
    fetch_rgb(img, st, sw, sh, sx1, sy1, enc, r11, g11, b11);
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

#ifndef LETTERBOX_HOST_EMULATION
extern "C" __global__ void letterbox_f16(const unsigned char* __restrict__ src,
                                         const ImageParams* __restrict__ params,
                                         unsigned short* __restrict__ dst, int dst_w, int dst_h,
                                         int pad_value) {
    letterbox<unsigned short>(src, params, dst, dst_w, dst_h, pad_value);
}
#endif
