#include "io/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

namespace peftcpp {
namespace {

constexpr size_t kBuf = 1 << 20;
std::atomic<uint64_t> g_tmp_counter{0};  // two writers of one path in one process get two temporaries

// Makes the rename durable; a failure here loses nothing already written.
void fsync_parent_dir(const std::string& path) {
  auto slash = path.find_last_of('/');
  std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

AtomicFile::AtomicFile(std::string path, std::string who)
    : path_(std::move(path)), who_(std::move(who)),
      tmp_(path_ + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(g_tmp_counter++)) {
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd_ < 0) fail("creating", errno);
  buf_.reserve(kBuf);
}

AtomicFile::~AtomicFile() {
  if (committed_) return;
  if (fd_ >= 0) ::close(fd_);
  ::unlink(tmp_.c_str());
}

void AtomicFile::fail(const std::string& what, int e) const {
  throw FileError(who_ + " " + what + " '" + tmp_ + "' (for '" + path_ + "') failed: " + std::strerror(e), e);
}

void AtomicFile::raw(const void* p, size_t n) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    ssize_t w = ::write(fd_, c, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      fail("writing", errno);
    }
    if (w == 0) fail("writing", ENOSPC);
    c += w;
    n -= static_cast<size_t>(w);
    written_ += static_cast<uint64_t>(w);
  }
}

void AtomicFile::flush() {
  if (!buf_.empty()) raw(buf_.data(), buf_.size());
  buf_.clear();
}

void AtomicFile::write(const void* p, size_t n) {
  if (buf_.size() + n > kBuf) flush();
  if (n >= kBuf) {
    raw(p, n);
    return;
  }
  const uint8_t* b = static_cast<const uint8_t*>(p);
  buf_.insert(buf_.end(), b, b + n);
}

void AtomicFile::zeros(size_t n) {
  static const uint8_t z[64] = {};
  while (n) {
    size_t k = n < sizeof(z) ? n : sizeof(z);
    write(z, k);
    n -= k;
  }
}

void AtomicFile::commit() {
  flush();
  if (::fsync(fd_) != 0) fail("fsync of", errno);
  const int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0) fail("closing", errno);
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
    const int e = errno;
    throw FileError(who_ + " cannot rename '" + tmp_ + "' to '" + path_ + "': " + std::strerror(e), e);
  }
  committed_ = true;
  fsync_parent_dir(path_);
}

}  // namespace peftcpp
