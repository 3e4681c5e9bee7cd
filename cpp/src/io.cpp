#include "adanns/io.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "adanns/common.h"

namespace adanns {

namespace {

constexpr char kMagic[8] = {'A', 'D', 'A', 'N', 'N', 'S', 'I', 'X'};
constexpr size_t kHeaderSize = 8 + 4 + 4 + 8 * 7;
constexpr size_t kAlign = 64;

inline uint64_t rotl(uint64_t v, int r) { return (v << r) | (v >> (64 - r)); }
constexpr uint64_t P1 = 0x9E3779B185EBCA87ull, P2 = 0xC2B2AE3D27D4EB4Full, P3 = 0x165667B19E3779F9ull;
inline uint64_t lane(uint64_t acc, uint64_t w) { return rotl(acc + w * P2, 31) * P1; }

struct Header {
  uint32_t version, kind;
  uint64_t meta_off, meta_size, data_off, data_size, meta_sum, data_sum, header_sum;
};

void encode_header(const Header& h, uint8_t* out) {
  std::memcpy(out, kMagic, 8);
  std::memcpy(out + 8, &h.version, 4);
  std::memcpy(out + 12, &h.kind, 4);
  const uint64_t f[7] = {h.meta_off, h.meta_size, h.data_off, h.data_size, h.meta_sum, h.data_sum, h.header_sum};
  std::memcpy(out + 16, f, sizeof f);
}

[[noreturn]] void corrupt(const std::string& path, const std::string& why) {
  raise("corrupt or unreadable index file '", path, "': ", why);
}

void write_all(int fd, const void* p, size_t n, const std::string& path) {
  const uint8_t* b = static_cast<const uint8_t*>(p);
  while (n > 0) {
    ssize_t w = ::write(fd, b, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      raise("cannot write '", path, "': ", std::strerror(errno));
    }
    b += w;
    n -= static_cast<size_t>(w);
  }
}

}  // namespace

uint64_t checksum64(const void* data, size_t size) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  uint64_t a = P1 + P2, b = P2, c = 0, d = 0 - P1;
  size_t i = 0;
  for (; i + 32 <= size; i += 32) {
    uint64_t w[4];
    std::memcpy(w, p + i, 32);
    a = lane(a, w[0]);
    b = lane(b, w[1]);
    c = lane(c, w[2]);
    d = lane(d, w[3]);
  }
  uint64_t h = rotl(a, 1) + rotl(b, 7) + rotl(c, 12) + rotl(d, 18) + size;
  for (; i < size; ++i) h = rotl(h ^ (p[i] * P3), 11) * P1;
  h ^= h >> 33;
  h *= P2;
  h ^= h >> 29;
  h *= P3;
  return h ^ (h >> 32);
}

namespace {

// Checksum of a byte stream fed in pieces: 1 MiB blocks hashed with checksum64 and chained, so the
// result depends only on the bytes, not on how they were split.
class StreamChecksum {
 public:
  void update(const void* data, size_t n) {
    const uint8_t* p = static_cast<const uint8_t*>(data);
    while (n > 0) {
      if (buf_.empty() && n >= kBlock) {
        fold(p, kBlock);
        p += kBlock;
        n -= kBlock;
        continue;
      }
      size_t take = std::min(n, kBlock - buf_.size());
      buf_.insert(buf_.end(), p, p + take);
      p += take;
      n -= take;
      if (buf_.size() == kBlock) {
        fold(buf_.data(), kBlock);
        buf_.clear();
      }
    }
  }
  uint64_t finish() {
    if (!buf_.empty()) fold(buf_.data(), buf_.size());
    buf_.clear();
    return h_;
  }

 private:
  static constexpr size_t kBlock = size_t(1) << 20;
  void fold(const uint8_t* p, size_t n) {
    uint64_t pair[2] = {h_, checksum64(p, n)};
    h_ = checksum64(pair, sizeof pair);
  }
  std::vector<uint8_t> buf_;
  uint64_t h_ = 0;
};

}  // namespace

void MetaWriter::put(const void* p, size_t n) {
  const uint8_t* b = static_cast<const uint8_t*>(p);
  buf_.insert(buf_.end(), b, b + n);
}

void MetaReader::get(void* out, size_t n) {
  if (n > n_ - pos_) raise("corrupt index file: metadata ends early");
  if (n) std::memcpy(out, p_ + pos_, n);  // out may be null for an empty read
  pos_ += n;
}
uint64_t MetaReader::u64() { uint64_t v; get(&v, sizeof v); return v; }
int64_t MetaReader::i64() { int64_t v; get(&v, sizeof v); return v; }
void MetaReader::f32s(float* out, size_t n) { get(out, n * sizeof(float)); }
void MetaReader::i64s(int64_t* out, size_t n) { get(out, n * sizeof(int64_t)); }
std::string MetaReader::str() {
  uint64_t n = count(n_ - pos_, "string length");
  std::string out(n, '\0');
  get(out.data(), n);
  return out;
}
uint64_t MetaReader::count(uint64_t max, const char* what) {
  uint64_t v = u64();
  if (v > max) raise("corrupt index file: implausible ", what, " ", v);
  return v;
}
void MetaReader::expect_end() const {
  if (pos_ != n_) raise("corrupt index file: ", n_ - pos_, " unexpected metadata bytes");
}

void write_index_file(const std::string& path, IndexKind kind, const std::vector<uint8_t>& meta,
                      const std::vector<DataChunk>& data) {
  Header h{};
  h.version = kFormatVersion;
  h.kind = static_cast<uint32_t>(kind);
  h.meta_off = kHeaderSize;
  h.meta_size = meta.size();
  h.data_off = (kHeaderSize + meta.size() + kAlign - 1) / kAlign * kAlign;
  h.meta_sum = checksum64(meta.data(), meta.size());
  StreamChecksum dsum;
  for (const DataChunk& c : data) {
    h.data_size += c.size;
    dsum.update(c.data, c.size);
  }
  h.data_sum = dsum.finish();
  uint8_t hb[kHeaderSize];
  encode_header(h, hb);
  h.header_sum = checksum64(hb, kHeaderSize - 8);
  encode_header(h, hb);

  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) raise("cannot create '", tmp, "': ", std::strerror(errno));
  try {
    write_all(fd, hb, kHeaderSize, tmp);
    write_all(fd, meta.data(), meta.size(), tmp);
    std::vector<uint8_t> pad(h.data_off - kHeaderSize - meta.size(), 0);
    write_all(fd, pad.data(), pad.size(), tmp);
    for (const DataChunk& c : data) write_all(fd, c.data, c.size, tmp);
    if (::fsync(fd) != 0) raise("cannot fsync '", tmp, "': ", std::strerror(errno));
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  ::close(fd);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    raise("cannot rename '", tmp, "' to '", path, "': ", std::strerror(e));
  }
}

MappedFile::MappedFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) raise("cannot open index file '", path, "': ", std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    raise("cannot stat '", path, "': ", std::strerror(errno));
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      ::close(fd);
      raise("cannot map '", path, "': ", std::strerror(errno));
    }
    data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

IndexFile read_index_file(const std::string& path, bool mmap, bool verify) {
  auto file = std::make_shared<MappedFile>(path);
  const uint8_t* p = file->data();
  size_t size = file->size();
  if (size < kHeaderSize) corrupt(path, "shorter than the header (" + std::to_string(size) + " bytes)");
  if (std::memcmp(p, kMagic, 8) != 0) corrupt(path, "not an adanns index (bad magic)");
  Header h{};
  std::memcpy(&h.version, p + 8, 4);
  std::memcpy(&h.kind, p + 12, 4);
  uint64_t f[7];
  std::memcpy(f, p + 16, sizeof f);
  h.meta_off = f[0], h.meta_size = f[1], h.data_off = f[2], h.data_size = f[3];
  h.meta_sum = f[4], h.data_sum = f[5], h.header_sum = f[6];
  if (checksum64(p, kHeaderSize - 8) != h.header_sum) corrupt(path, "header checksum mismatch");
  if (h.version != kFormatVersion)
    corrupt(path, "unsupported format version " + std::to_string(h.version));
  if (h.kind != static_cast<uint32_t>(IndexKind::Flat) && h.kind != static_cast<uint32_t>(IndexKind::IVF) &&
      h.kind != static_cast<uint32_t>(IndexKind::Binary) && h.kind != static_cast<uint32_t>(IndexKind::PQ) &&
      h.kind != static_cast<uint32_t>(IndexKind::Graph))
    corrupt(path, "unknown index kind " + std::to_string(h.kind));
  if (h.meta_off != kHeaderSize || h.meta_size > size || h.data_off < h.meta_off + h.meta_size ||
      h.data_off % kAlign != 0 || h.data_size % sizeof(float) != 0)
    corrupt(path, "inconsistent section offsets");
  if (h.data_off > size || h.data_size != size - h.data_off)
    corrupt(path, "truncated or extended: expected " + std::to_string(h.data_off + h.data_size) +
                      " bytes, found " + std::to_string(size));
  // No checksum covers the padding before the data: it must be exactly what the writer puts there.
  const uint64_t meta_end = h.meta_off + h.meta_size;
  if (h.data_off != (meta_end + kAlign - 1) / kAlign * kAlign ||
      std::any_of(p + meta_end, p + h.data_off, [](uint8_t b) { return b != 0; }))
    corrupt(path, "bad padding between metadata and data");
  if (checksum64(p + h.meta_off, h.meta_size) != h.meta_sum) corrupt(path, "metadata checksum mismatch");
  if (verify || !mmap) {
    StreamChecksum dsum;
    dsum.update(p + h.data_off, h.data_size);
    if (dsum.finish() != h.data_sum) corrupt(path, "data checksum mismatch");
  }
  IndexFile out;
  out.kind = static_cast<IndexKind>(h.kind);
  out.meta.assign(p + h.meta_off, p + h.meta_off + h.meta_size);
  out.data_floats = h.data_size / sizeof(float);
  if (mmap) {
    out.data = reinterpret_cast<const float*>(p + h.data_off);
    out.mapping = file;
  } else {
    out.owned.resize(out.data_floats);
    if (h.data_size) std::memcpy(out.owned.data(), p + h.data_off, h.data_size);
    out.data = out.owned.data();
  }
  return out;
}

}  // namespace adanns
