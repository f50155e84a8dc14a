// The one way the engine writes a user's file (the protocol of
// python/peftcpp/fileio.py): bytes go to a temporary file beside the target,
// which is fsynced, closed and renamed over it only on commit(); the folder is
// then fsynced so the rename survives a crash. Destroyed without commit(), the
// temporary is removed and the target (if any) is untouched.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace peftcpp {

// An I/O failure (open, write, fsync, rename); errno is kept so the bindings
// raise the matching OSError subclass (FileNotFoundError, PermissionError...).
struct FileError : std::runtime_error {
  int err;
  FileError(const std::string& msg, int e) : std::runtime_error(msg), err(e) {}
};

class AtomicFile {
 public:
  // `who` prefixes every error ("[save_safetensors]"); the temporary is
  // "<path>.tmp-<pid>-<n>", created 0644.
  AtomicFile(std::string path, std::string who);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* p, size_t n);  // buffered
  template <class T>
  void put(T v) {
    write(&v, sizeof(T));
  }
  void zeros(size_t n);
  uint64_t pos() const { return written_ + buf_.size(); }
  void commit();  // flush, fsync, close, rename over the target, fsync the folder

  [[noreturn]] void fail(const std::string& what, int e) const;

 private:
  void flush();
  void raw(const void* p, size_t n);
  std::string path_, who_, tmp_;
  int fd_ = -1;
  bool committed_ = false;
  uint64_t written_ = 0;
  std::vector<uint8_t> buf_;
};

}  // namespace peftcpp
