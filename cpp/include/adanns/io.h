// Index files: a fixed header (magic, version, kind, section offsets and checksums), a metadata
// section (small: parameters, ids, centroids) and a 64-byte aligned data section (the vectors), so
// the vectors can be memory-mapped. Any inconsistency on load raises Error ("corrupt index file").
//
// Layout (little-endian): "ADANNSIX" | u32 version | u32 kind | u64 meta_off | u64 meta_size |
// u64 data_off | u64 data_size | u64 meta_checksum | u64 data_checksum | u64 header_checksum | meta |
// zero padding | data. The file ends exactly at data_off + data_size.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "adanns/aligned.h"

namespace adanns {

enum class IndexKind : uint32_t { Flat = 1, IVF = 2, Binary = 3, PQ = 4, Graph = 5 };
constexpr uint32_t kFormatVersion = 1;

// 64-bit checksum over bytes (four independent multiply-rotate lanes, then mixed).
uint64_t checksum64(const void* data, size_t size);

// Appends little-endian values to the metadata section.
class MetaWriter {
 public:
  void u64(uint64_t v) { put(&v, sizeof v); }
  void i64(int64_t v) { put(&v, sizeof v); }
  void f32s(const float* p, size_t n) { put(p, n * sizeof(float)); }
  void i64s(const int64_t* p, size_t n) { put(p, n * sizeof(int64_t)); }
  void str(const std::string& s) {  // length-prefixed
    u64(s.size());
    put(s.data(), s.size());
  }
  const std::vector<uint8_t>& bytes() const { return buf_; }

 private:
  void put(const void* p, size_t n);
  std::vector<uint8_t> buf_;
};

// Bounds-checked reads from the metadata section; running past its end is a corrupt file.
class MetaReader {
 public:
  MetaReader(const uint8_t* p, size_t n) : p_(p), n_(n) {}
  uint64_t u64();
  int64_t i64();
  void f32s(float* out, size_t n);
  void i64s(int64_t* out, size_t n);
  std::string str();
  // A count that must be plausible (guards allocations against corrupted sizes).
  uint64_t count(uint64_t max, const char* what);
  void expect_end() const;

 private:
  void get(void* out, size_t n);
  const uint8_t* p_;
  size_t n_, pos_ = 0;
};

// One chunk of the data section, written in order.
struct DataChunk {
  const void* data;
  size_t size;
};

// Writes to `path + ".tmp"`, fsyncs and renames, so a crash never leaves a half-written index.
void write_index_file(const std::string& path, IndexKind kind, const std::vector<uint8_t>& meta,
                      const std::vector<DataChunk>& data);

// Read-only memory mapping of a whole file.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

struct IndexFile {
  IndexKind kind;
  std::vector<uint8_t> meta;
  // The data section: inside `mapping` when memory-mapped, else in `owned`.
  std::shared_ptr<MappedFile> mapping;
  AlignedVector<float> owned;
  const float* data = nullptr;
  size_t data_floats = 0;
};

// Reads and checks a file. With mmap the data section stays mapped; `verify` = false skips its
// checksum (the header and metadata are always checked).
IndexFile read_index_file(const std::string& path, bool mmap, bool verify);

}  // namespace adanns
