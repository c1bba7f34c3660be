#include "base/huge_buffer.h"

#include <sys/mman.h>

#include <cerrno>
#include <cstring>
#include <system_error>
#include <utility>

#include "base/error.h"

namespace hearth {

HugeBuffer::HugeBuffer(size_t n_floats) : n_(n_floats), bytes_(n_floats * sizeof(float)) {
    if (bytes_ == 0) return;
    void* m = ::mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
        const int e = errno;
        n_ = bytes_ = 0;
        fail("cannot allocate {} MiB: {}", (n_floats * sizeof(float)) >> 20, std::system_category().message(e));
    }
    ::madvise(m, bytes_, MADV_HUGEPAGE);  // advice only: without THP this is ordinary memory
    std::memset(m, 0, bytes_);            // fault every page in now (anonymous pages read as zero anyway)
    data_ = static_cast<float*>(m);
}

HugeBuffer::~HugeBuffer() { release(); }

HugeBuffer::HugeBuffer(HugeBuffer&& o) noexcept
    : data_(std::exchange(o.data_, nullptr)), n_(std::exchange(o.n_, 0)), bytes_(std::exchange(o.bytes_, 0)) {}

HugeBuffer& HugeBuffer::operator=(HugeBuffer&& o) noexcept {
    if (this != &o) {
        release();
        data_ = std::exchange(o.data_, nullptr);
        n_ = std::exchange(o.n_, 0);
        bytes_ = std::exchange(o.bytes_, 0);
    }
    return *this;
}

void HugeBuffer::release() {
    if (data_) ::munmap(data_, bytes_);
    data_ = nullptr;
    n_ = bytes_ = 0;
}

}  // namespace hearth
