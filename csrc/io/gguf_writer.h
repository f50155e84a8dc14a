// GGUF v3 writer (layout in io/gguf.h). Metadata and tensor infos are
// collected first; write() then streams the header and each tensor's bytes
// (produced on demand, so a model never has to be in memory twice) to a
// temporary file beside the target, fsyncs it and renames it into place: a
// crash, a full disk or an exception leaves no half-written file under the
// final name.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "io/gguf.h"

namespace peftcpp {

class GGUFWriter {
 public:
  explicit GGUFWriter(std::string path, uint32_t alignment = 32);

  // Sets a metadata value; the first set of a key fixes its position, a
  // later set replaces the value in place. general.alignment is written
  // only when alignment != 32.
  void set(const std::string& key, GGUFValue value);
  void remove(const std::string& key);
  const GGUFValue* find(const std::string& key) const;

  // Fills exactly nbytes at dst with the tensor's data.
  using Producer = std::function<void(uint8_t* dst, size_t nbytes)>;

  // Adds a tensor (file order = call order). ne is ggml order (ne[0] the
  // row length). Throws ValueError naming the tensor for a duplicate or
  // over-long (>= 64 bytes) name, more than 4 dims, an unknown type or a
  // row length that is not a multiple of the type's block size.
  void add_tensor(const std::string& name, int type_id, std::vector<int64_t> ne, Producer produce);

  size_t n_tensors() const { return tensors_.size(); }

  // Writes the file. progress(done_tensors, total_tensors) after each
  // tensor. Throws FileError naming the path on any I/O failure (the
  // temporary file is removed).
  void write(const std::function<void(size_t, size_t)>& progress = {});

  // Helpers for building values.
  static GGUFValue u32(uint32_t v);
  static GGUFValue i32(int32_t v);
  static GGUFValue f32(float v);
  static GGUFValue boolean(bool v);
  static GGUFValue string(std::string v);
  static GGUFValue string_array(std::vector<std::string> v);
  static GGUFValue i32_array(const std::vector<int32_t>& v);
  static GGUFValue u32_array(const std::vector<uint32_t>& v);
  static GGUFValue f32_array(const std::vector<float>& v);

 private:
  struct Entry {
    std::string name;
    int type_id;
    std::vector<int64_t> ne;
    uint64_t nbytes;
    Producer produce;
  };
  std::string path_;
  uint32_t alignment_;
  std::vector<std::pair<std::string, GGUFValue>> kv_;
  std::vector<Entry> tensors_;
  uint64_t data_bytes_ = 0;  // the data section's size so far (padded tensors)
};

}  // namespace peftcpp
