#pragma once

// The WebSocket of http_server.h over Boost.Beast, for the server's own
// connections (a Unix or TCP socket with an io_context of its own).

#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>

#include "common/error.h"
#include "server/http_server.h"

namespace airlock::server {

// Beast's websocket stream is not safe to use from two threads; so every
// operation on it runs on the connection's thread (in run()), and other
// threads only post work there. Reads and writes are asynchronous so that
// one of each can be in flight at once, as Beast allows.
template <typename Stream>
class BeastWebSocket final : public WebSocket {
 public:
  static constexpr size_t kMaxQueuedBytes = 1 << 20;

  BeastWebSocket(Stream& socket, boost::asio::io_context& context) : ws_(socket), context_(context) {}

  void handshake(const boost::beast::http::request<boost::beast::http::string_body>& request) {
    namespace websocket = boost::beast::websocket;
    websocket::stream_base::timeout timeout{};
    timeout.handshake_timeout = std::chrono::seconds(30);
    // A peer that answers no ping for this long is gone: its socket is closed.
    timeout.idle_timeout = std::chrono::seconds(120);
    timeout.keep_alive_pings = true;
    ws_.set_option(timeout);
    ws_.set_option(websocket::stream_base::decorator([](websocket::response_type& response) {
      response.set(boost::beast::http::field::server, "airlockd");
    }));
    ws_.read_message_max(1 << 20);
    boost::beast::error_code error;
    ws_.accept(request, error);
    if (error) throw Error(ErrorCode::io, "the WebSocket handshake failed: " + error.message());
  }

  void send(std::string data, bool binary) override {
    {
      std::unique_lock lock(mutex_);
      room_.wait(lock, [&] { return closed_ || queued_ < kMaxQueuedBytes; });
      if (closed_) return;
      queued_ += data.size();
    }
    boost::asio::post(context_, [this, data = std::move(data), binary]() mutable {
      outbox_.emplace_back(std::move(data), binary);
      if (!writing_) write_next();
    });
  }

  void close(const std::string& reason) override {
    boost::asio::post(context_, [this, reason] {
      close_reason_ = reason;
      if (!writing_) write_next();
    });
  }

  void run(const std::function<void(const std::string&, bool)>& on_message) override {
    on_message_ = &on_message;
    read_next();
    context_.run();
    mark_closed();
  }

 private:
  void mark_closed() {
    std::lock_guard lock(mutex_);
    closed_ = true;
    room_.notify_all();
  }

  void read_next() {
    ws_.async_read(in_, [this](boost::beast::error_code error, size_t) {
      if (error) {
        // Closed by the peer, by us, or cut off: nothing more is sent
        // either, and what is pending (Beast's ping timer) is dropped.
        mark_closed();
        context_.stop();
        return;
      }
      const std::string message = boost::beast::buffers_to_string(in_.data());
      in_.consume(in_.size());
      (*on_message_)(message, ws_.got_binary());
      read_next();
    });
  }

  void write_next() {
    {
      std::lock_guard lock(mutex_);
      if (closed_) return;
    }
    if (outbox_.empty()) {
      if (close_reason_ && !close_sent_) {
        close_sent_ = true;
        writing_ = true;
        ws_.async_close(boost::beast::websocket::close_reason(boost::beast::websocket::close_code::normal,
                                                              close_reason_->substr(0, 120)),
                        [this](boost::beast::error_code) { writing_ = false; });
      }
      return;
    }
    writing_ = true;
    ws_.binary(outbox_.front().second);
    ws_.async_write(boost::asio::buffer(outbox_.front().first),
                    [this](boost::beast::error_code error, size_t) {
                      writing_ = false;
                      {
                        std::lock_guard lock(mutex_);
                        queued_ -= outbox_.front().first.size();
                        room_.notify_all();
                      }
                      outbox_.pop_front();
                      if (error) {
                        mark_closed();
                        return;
                      }
                      write_next();
                    });
  }

  boost::beast::websocket::stream<Stream&> ws_;
  boost::asio::io_context& context_;
  boost::beast::flat_buffer in_;
  const std::function<void(const std::string&, bool)>* on_message_ = nullptr;
  // On the connection's thread only:
  std::deque<std::pair<std::string, bool>> outbox_;
  bool writing_ = false;
  bool close_sent_ = false;
  std::optional<std::string> close_reason_;
  // Shared with the threads that send:
  std::mutex mutex_;
  std::condition_variable room_;
  size_t queued_ = 0;
  bool closed_ = false;
};

// The upgrade of one request, accepted at most once.
template <typename Stream>
class BeastWebSocketUpgrade final : public WebSocketUpgrade {
 public:
  BeastWebSocketUpgrade(Stream& socket, boost::asio::io_context& context,
                        const boost::beast::http::request<boost::beast::http::string_body>& request)
      : socket_(socket), context_(context), request_(request) {}

  WebSocket& accept() override {
    if (!websocket_) {
      websocket_.emplace(socket_, context_);
      try {
        websocket_->handshake(request_);
      } catch (const Error&) {
        websocket_.reset();
        throw;
      }
    }
    return *websocket_;
  }
  bool accepted() const { return websocket_.has_value(); }

 private:
  Stream& socket_;
  boost::asio::io_context& context_;
  const boost::beast::http::request<boost::beast::http::string_body>& request_;
  std::optional<BeastWebSocket<Stream>> websocket_;
};

}  // namespace airlock::server
