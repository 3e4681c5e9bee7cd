// Portable kernels: the oracle the SIMD levels are tested against. Each pair sums into 8 partial
// lanes (so the compiler can vectorise with the baseline ISA) and folds them in a fixed order.
#include "kernels.h"

namespace adanns {
namespace simd {
namespace {

constexpr size_t kLanes = 8;

inline float fold(const float* s) {
  return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
}

inline float ip_pair(const float* q, const float* x, size_t d) {
  float s[kLanes] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t j = 0;
  for (; j + kLanes <= d; j += kLanes)
    for (size_t l = 0; l < kLanes; ++l) s[l] += q[j + l] * x[j + l];
  for (size_t l = 0; j + l < d; ++l) s[l] += q[j + l] * x[j + l];
  return fold(s);
}

inline float l2_pair(const float* q, const float* x, size_t d) {
  float s[kLanes] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t j = 0;
  for (; j + kLanes <= d; j += kLanes)
    for (size_t l = 0; l < kLanes; ++l) {
      float t = q[j + l] - x[j + l];
      s[l] += t * t;
    }
  for (size_t l = 0; j + l < d; ++l) {
    float t = q[j + l] - x[j + l];
    s[l] += t * t;
  }
  return fold(s);
}

void block_ip(const float* q, size_t nq, size_t qs, const float* x, size_t nx, size_t xs, size_t d,
              float* out, size_t ldo) {
  for (size_t i = 0; i < nq; ++i)
    for (size_t j = 0; j < nx; ++j) out[i * ldo + j] = ip_pair(q + i * qs, x + j * xs, d);
}

void block_l2(const float* q, size_t nq, size_t qs, const float* x, size_t nx, size_t xs, size_t d,
              float* out, size_t ldo) {
  for (size_t i = 0; i < nq; ++i)
    for (size_t j = 0; j < nx; ++j) out[i * ldo + j] = l2_pair(q + i * qs, x + j * xs, d);
}

void norms_sq(const float* x, size_t nx, size_t xs, size_t d, float* out) {
  for (size_t j = 0; j < nx; ++j) out[j] = ip_pair(x + j * xs, x + j * xs, d);
}

void block_ip_norm(const float* q, size_t nq, size_t qs, const float* x, size_t nx, size_t xs,
                   size_t d, float* out, size_t ldo, float* xn) {
  block_ip(q, nq, qs, x, nx, xs, d, out, ldo);
  norms_sq(x, nx, xs, d, xn);
}

// Panels of one row: packing is a copy. Sums run coordinate by coordinate, as the SIMD GEMMs do.
void pack_rows(const float* x, size_t nx, size_t xs, size_t d, float* out) {
  for (size_t j = 0; j < nx; ++j)
    for (size_t t = 0; t < d; ++t) out[j * d + t] = x[j * xs + t];
}

void gemm_packed(const float* q, size_t nq, size_t qs, const float* packed, size_t nx, size_t pd,
                 size_t du, float* out, size_t ldo) {
  for (size_t i = 0; i < nq; ++i)
    for (size_t j = 0; j < nx; ++j) {
      const float* a = q + i * qs;
      const float* b = packed + j * pd;
      float s = 0;
      for (size_t t = 0; t < du; ++t) s += a[t] * b[t];
      out[i * ldo + j] = s;
    }
}

float dot_u8(const float* q, const unsigned char* code, size_t d) {
  float s[kLanes] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t j = 0;
  for (; j + kLanes <= d; j += kLanes)
    for (size_t l = 0; l < kLanes; ++l) s[l] += q[j + l] * static_cast<float>(code[j + l]);
  for (size_t l = 0; j + l < d; ++l) s[l] += q[j + l] * static_cast<float>(code[j + l]);
  return fold(s);
}

}  // namespace

const Kernels scalar_kernels = {block_ip, block_l2, block_ip_norm, norms_sq, pack_rows, gemm_packed, 1, 256,
                                dot_u8, ip_pair, l2_pair};

}  // namespace simd
}  // namespace adanns
