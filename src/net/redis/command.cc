// Pipeline batch assembly.
#include "net/redis/command.h"

#include <algorithm>
#include <string_view>
#include <utility>

#include "net/redis/protocol.h"

namespace redpacket::net::redis {

std::size_t AssembleBatch(const std::vector<QueuedCommand>& queued, std::string* out,
                          std::deque<ExpectedReply>* expected) {
  static const std::string kAsking = EncodeCommand({"ASKING"});
  std::size_t written = 0;
  std::shared_ptr<WaitGroup> wait_group;
  std::chrono::milliseconds wait_timeout{0};
  for (const QueuedCommand& item : queued) {
    Command& command = *item.command;
    if (command.done) continue;
    if (item.asking) {
      out->append(kAsking);
      expected->push_back({ExpectedReply::Role::kAsking, item.command, command.attempt, nullptr});
    }
    out->append(command.payload);
    expected->push_back({ExpectedReply::Role::kCommand, item.command, command.attempt, nullptr});
    ++written;
    if (command.min_replicas > 0) {
      if (!wait_group) wait_group = std::make_shared<WaitGroup>();
      wait_group->min_replicas = std::max(wait_group->min_replicas, command.min_replicas);
      wait_group->members.push_back({item.command, command.attempt});
      wait_timeout = std::max(wait_timeout, command.wait_timeout);
    }
  }
  if (wait_group) {
    // WAIT 0 would block until the replicas catch up, however long that takes.
    const auto timeout_ms = std::max<std::int64_t>(1, wait_timeout.count());
    const std::string replicas = std::to_string(wait_group->min_replicas);
    const std::string timeout = std::to_string(timeout_ms);
    AppendCommand({"WAIT", replicas, timeout}, out);
    expected->push_back({ExpectedReply::Role::kWait, nullptr, 0, std::move(wait_group)});
  }
  return written;
}

void DeadlineQueue::Push(const CommandPtr& command) {
  heap_.push_back(command);
  command->deadline_index = heap_.size() - 1;
  SiftUp(heap_.size() - 1);
}

void DeadlineQueue::Erase(Command& command) {
  const std::size_t index = command.deadline_index;
  if (index == Command::kNotQueued) return;
  command.deadline_index = Command::kNotQueued;
  CommandPtr last = std::move(heap_.back());
  heap_.pop_back();
  if (index == heap_.size()) return;  // it was the last element
  Place(index, std::move(last));
  if (index > 0 && heap_[index]->deadline < heap_[(index - 1) / 2]->deadline) {
    SiftUp(index);
  } else {
    SiftDown(index);
  }
}

CommandPtr DeadlineQueue::Pop() {
  CommandPtr top = heap_.front();
  Erase(*top);
  return top;
}

void DeadlineQueue::Place(std::size_t index, CommandPtr command) {
  command->deadline_index = index;
  heap_[index] = std::move(command);
}

void DeadlineQueue::SiftUp(std::size_t index) {
  CommandPtr moving = std::move(heap_[index]);
  while (index > 0) {
    const std::size_t parent = (index - 1) / 2;
    if (heap_[parent]->deadline <= moving->deadline) break;
    Place(index, std::move(heap_[parent]));
    index = parent;
  }
  Place(index, std::move(moving));
}

void DeadlineQueue::SiftDown(std::size_t index) {
  CommandPtr moving = std::move(heap_[index]);
  for (;;) {
    std::size_t child = 2 * index + 1;
    if (child >= heap_.size()) break;
    if (child + 1 < heap_.size() && heap_[child + 1]->deadline < heap_[child]->deadline) ++child;
    if (moving->deadline <= heap_[child]->deadline) break;
    Place(index, std::move(heap_[child]));
    index = child;
  }
  Place(index, std::move(moving));
}

}  // namespace redpacket::net::redis
