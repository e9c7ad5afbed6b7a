/* One-token int8 linear layers for decoding, with AVX-512 VNNI (qa/native_kernels.py).
 *
 * They compute what PyTorch's dynamic int8 linear (fbgemm, reduce_range) computes for one
 * token, bit for bit: the input quantised to 0..127 with fbgemm's parameters and rounding,
 * exact int32 products, then fbgemm's float epilogue. The products are one plain pass over
 * row-major int8 weights, which streams near the memory bandwidth where fbgemm's packed
 * kernel does not at one row. Compiled without floating-point contraction, so every
 * multiply-add below is rounded as written.
 */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <omp.h>
#include <string.h>

#define QMAX 127 /* reduce_range: 7-bit activations */

/* fbgemm's quantisation parameters for [lo, hi] on 0..QMAX (ChooseQuantizationParams). */
static void choose_params(float lo, float hi, float *scale_out, int32_t *zero_out) {
    float mn = lo < 0.f ? lo : 0.f, mx = hi > 0.f ? hi : 0.f;
    double scale = ((double)mx - mn) / QMAX;
    if ((float)scale == 0.0f || isinf(1.0f / (float)scale)) scale = 0.1;
    const float small = 6.1e-5f;
    if (scale < small) {
        float original = (float)scale;
        scale = small;
        if (mn == 0.0f) {
            mx = small * QMAX;
        } else if (mx == 0.0f) {
            mn = -small * QMAX;
        } else {
            float amplifier = small / original;
            mn *= amplifier;
            mx *= amplifier;
        }
    }
    double from_min = 0 - mn / scale, from_max = QMAX - mx / scale;
    double error_min = 0 - fabs(mn / scale), error_max = QMAX - fabs(mx / scale);
    double initial = error_min < error_max ? from_min : from_max;
    int32_t zero = initial < 0 ? 0 : initial > QMAX ? QMAX : (int32_t)nearbyint(initial);
    *scale_out = (float)scale;
    *zero_out = zero;
}

/* x -> uint8 as fbgemm's vectorised Quantize: round(x * (1 / scale) + zero), clamped. */
static void quantize(const float *x, int64_t k, float scale, int32_t zero, uint8_t *out) {
    const __m512 inverse = _mm512_set1_ps(1.f / scale), zero_f = _mm512_set1_ps((float)zero);
    const __m512i lo = _mm512_setzero_si512(), hi = _mm512_set1_epi32(255);
    int64_t i = 0;
    for (; i + 16 <= k; i += 16) {
        __m512 t = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), inverse, zero_f);
        t = _mm512_min_ps(t, _mm512_set1_ps(2147483520.f));
        __m512i r = _mm512_min_epi32(_mm512_max_epi32(_mm512_cvtps_epi32(t), lo), hi);
        _mm_storeu_si128((__m128i *)(out + i), _mm512_cvtepi32_epi8(r));
    }
    for (; i < k; i++) {
        float t = fminf(fmaf(x[i], 1.f / scale, (float)zero), 2147483520.f);
        long r = lrintf(t);
        out[i] = (uint8_t)(r < 0 ? 0 : r > 255 ? 255 : r);
    }
}

static inline __m512i tail_load(const void *p, int64_t n) {
    return _mm512_maskz_loadu_epi8(n >= 64 ? ~0ULL : ((1ULL << n) - 1), p);
}

/* acc[j] = sum_k xq[k] * w[j, k] for rows [begin, end), four neighbouring rows at a time. */
static void products_block(const uint8_t *xq, const int8_t *w, int64_t k, int64_t begin,
                           int64_t end, int32_t *acc) {
    const int64_t full = k / 64 * 64;
    int64_t j = begin;
    for (; j + 4 <= end; j += 4) {
        const int8_t *r = w + j * k;
        __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
        for (int64_t c = 0; c < full; c += 64) {
            __m512i xv = _mm512_loadu_si512(xq + c);
            a0 = _mm512_dpbusd_epi32(a0, xv, _mm512_loadu_si512(r + c));
            a1 = _mm512_dpbusd_epi32(a1, xv, _mm512_loadu_si512(r + k + c));
            a2 = _mm512_dpbusd_epi32(a2, xv, _mm512_loadu_si512(r + 2 * k + c));
            a3 = _mm512_dpbusd_epi32(a3, xv, _mm512_loadu_si512(r + 3 * k + c));
        }
        if (full < k) {
            __m512i xv = tail_load(xq + full, k - full);
            a0 = _mm512_dpbusd_epi32(a0, xv, tail_load(r + full, k - full));
            a1 = _mm512_dpbusd_epi32(a1, xv, tail_load(r + k + full, k - full));
            a2 = _mm512_dpbusd_epi32(a2, xv, tail_load(r + 2 * k + full, k - full));
            a3 = _mm512_dpbusd_epi32(a3, xv, tail_load(r + 3 * k + full, k - full));
        }
        acc[j] = _mm512_reduce_add_epi32(a0);
        acc[j + 1] = _mm512_reduce_add_epi32(a1);
        acc[j + 2] = _mm512_reduce_add_epi32(a2);
        acc[j + 3] = _mm512_reduce_add_epi32(a3);
    }
    for (; j < end; j++) {
        const int8_t *r = w + j * k;
        __m512i a = _mm512_setzero_si512();
        for (int64_t c = 0; c < k; c += 64)
            a = _mm512_dpbusd_epi32(a, tail_load(xq + c, k - c), tail_load(r + c, k - c));
        acc[j] = _mm512_reduce_add_epi32(a);
    }
}

/* The same, one row from each of STREAMS equal parts of [begin, end) at a time: more memory
 * pages read at once keep more reads in flight (11 % faster than products_block here). */
#define STREAMS 8
static void products(const uint8_t *xq, const int8_t *w, int64_t k, int64_t begin,
                     int64_t end, int32_t *acc) {
    const int64_t part = (end - begin) / STREAMS;
    int64_t done = 0;
    if (k % 64 == 0) {
        for (; done < part; done++) {
            __m512i a[STREAMS];
            for (int t = 0; t < STREAMS; t++) a[t] = _mm512_setzero_si512();
            for (int64_t c = 0; c < k; c += 64) {
                __m512i xv = _mm512_loadu_si512(xq + c);
                for (int t = 0; t < STREAMS; t++) {
                    const int8_t *row = w + (begin + t * part + done) * k;
                    a[t] = _mm512_dpbusd_epi32(a[t], xv, _mm512_loadu_si512(row + c));
                }
            }
            for (int t = 0; t < STREAMS; t++)
                acc[begin + t * part + done] = _mm512_reduce_add_epi32(a[t]);
        }
    }
    for (int t = 0; t < STREAMS; t++) {  /* what is left of each part, and the tail */
        int64_t stop = t == STREAMS - 1 ? end : begin + (t + 1) * part;
        products_block(xq, w, k, begin + t * part + done, stop, acc);
    }
}

/* out = x @ w.T + bias for one token x of k floats; w is n x k int8 with one scale per row,
 * col_sums[j] = sum_k w[j, k]; bias may be NULL; work holds k bytes. */
void qa_int8_linear_1(const float *x, int64_t k, const int8_t *w, const float *w_scales,
                      const int32_t *col_sums, const float *bias, int64_t n, float *out,
                      uint8_t *work, int threads) {
    float lo = x[0], hi = x[0];
    for (int64_t i = 1; i < k; i++) {
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
    }
    float scale;
    int32_t zero;
    choose_params(lo, hi, &scale, &zero);
    quantize(x, k, scale, zero, work);
    int32_t *acc = (int32_t *)out; /* same size as float; each slot is read before written */
#pragma omp parallel num_threads(threads)
    {
        int64_t teams = omp_get_num_threads(), me = omp_get_thread_num();
        int64_t per = (n / teams + 15) / 16 * 16;
        int64_t begin = me * per, end = begin + per < n ? begin + per : n;
        if (begin < end) {
            products(work, w, k, begin, end, acc);
            for (int64_t j = begin; j < end; j++) {
                /* fbgemm: one rounding for the product alone, one fused multiply-add with bias */
                float raw = (float)(acc[j] - zero * col_sums[j]), multiplier = scale * w_scales[j];
                out[j] = bias ? fmaf(raw, multiplier, bias[j]) : raw * multiplier;
            }
        }
    }
}

/* To bfloat16 (kept in a float): ties to even as torch's .to(bfloat16), or ties away from
 * zero as the embedding_bag kernel rounds its sums. */
static inline float bf16_round(float v, int ties_even) {
    uint32_t u;
    memcpy(&u, &v, 4);
    u = (u + (ties_even ? 0x7FFF + ((u >> 16) & 1) : 0x8000)) & 0xFFFF0000u;
    memcpy(&v, &u, 4);
    return v;
}

/* The one-token call of qa.int8_layers.OutlierInt8Linear (the first ten arguments as for
 * qa_int8_linear_1): the channels above ratio times the mean magnitude are zeroed in the int8
 * product and summed over their bfloat16 weight rows (rows: k x n), as torch's embedding_bag
 * does (float sums in channel order, rounded to bfloat16). filled and channels hold k values,
 * sums n. Returns the number of such channels, or -1 (nothing written) when a magnitude is so
 * close to the threshold that the float32 mean torch computes might pick differently. */
int64_t qa_outlier_linear_1(const float *x, int64_t k, const int8_t *w, const float *w_scales,
                            const int32_t *col_sums, const float *bias, int64_t n, float *out,
                            uint8_t *work, int threads, float ratio, const uint16_t *rows,
                            float *filled, int64_t *channels, float *sums) {
    double total = 0;
    for (int64_t i = 0; i < k; i++) total += fabs((double)x[i]);
    double threshold = total / k * ratio, band = threshold * 1e-5;
    int64_t count = 0;
    for (int64_t i = 0; i < k; i++) {
        double size = fabs((double)x[i]);
        if (fabs(size - threshold) <= band) return -1;
        if (size > threshold) {
            channels[count++] = i;
            filled[i] = 0.f;
        } else {
            filled[i] = x[i];
        }
    }
    qa_int8_linear_1(filled, k, w, w_scales, col_sums, bias, n, out, work, threads);
    if (count == 0) return 0;
#pragma omp parallel num_threads(threads)
    {
        int64_t teams = omp_get_num_threads(), me = omp_get_thread_num();
        int64_t per = (n / teams + 15) / 16 * 16;
        int64_t begin = me * per, end = begin + per < n ? begin + per : n;
        float *acc = sums; /* per output, the channels' sum in channel order */
        for (int64_t j = begin; j < end; j++) acc[j] = 0.f;
        for (int64_t c = 0; c < count; c++) {
            const __m512 wv = _mm512_set1_ps(bf16_round(x[channels[c]], 1));
            const uint16_t *row = rows + channels[c] * n;
            if (c + 8 < count) { /* short rows: fetch one 8 ahead while this one is summed */
                const char *ahead = (const char *)(rows + channels[c + 8] * n + begin);
                for (int64_t b = 0; b < (end - begin) * 2; b += 64)
                    _mm_prefetch(ahead + b, _MM_HINT_T0);
            }
            for (int64_t j = begin; j < end; j += 16) {
                __mmask16 m = end - j >= 16 ? 0xFFFF : (__mmask16)((1u << (end - j)) - 1);
                __m512 r = _mm512_castsi512_ps(_mm512_slli_epi32(
                    _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, row + j)), 16));
                __m512 sum = _mm512_fmadd_ps(wv, r, _mm512_maskz_loadu_ps(m, acc + j));
                _mm512_mask_storeu_ps(acc + j, m, sum);
            }
        }
        for (int64_t j = begin; j < end; j++) out[j] += bf16_round(acc[j], 0);
    }
    return count;
}
