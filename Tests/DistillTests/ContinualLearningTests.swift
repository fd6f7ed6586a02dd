import Testing
@testable import Distill

@Suite("Continual learning")
struct ContinualLearningTests {
    @Test func tasksSplitClassesInOrder() {
        #expect(ClassIncrementalBenchmark.split(classCount: 10, tasks: 5) == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]])
        #expect(ClassIncrementalBenchmark.split(classCount: 10, tasks: 3) == [[0, 1, 2], [3, 4, 5], [6, 7, 8, 9]])
    }

    /// Forgetting: task 0 peaked at 0.9 and ends at 0.5, task 1 peaked at 0.8 and ends at 0.7: (0.4 + 0.1) / 2.
    @Test func forgettingAveragesEachTasksDropFromItsBest() {
        let accuracy = [[0.9], [0.7, 0.8], [0.5, 0.7, 0.95]]
        #expect(abs(ClassIncrementalBenchmark.forgetting(accuracy) - 0.25) < 1e-12)
        #expect(ClassIncrementalBenchmark.forgetting([[0.9]]) == 0)
    }

    /// A run on the digits: the memory grows per task, each stage's model is tested on the classes seen so far (per
    /// task and overall), a model trained on two classes knows them, and the same seed repeats the run.
    @Test func randomMemoryRunOnTheDigits() throws {
        let splits = try DatasetStore.loadDigits()
        var recipe = DistillationRecipe.reference(.random)
        recipe.imagesPerClass = 5
        let evaluation = SetEvaluation(network: .init(imageShape: [1, 8, 8], classCount: 10, depth: 2, width: 16),
                                       models: 1, epochs: 100, augmentation: nil, seed: 3)
        let benchmark = ClassIncrementalBenchmark(tasks: ClassIncrementalBenchmark.split(classCount: 10, tasks: 5),
                                                  recipe: recipe, evaluation: evaluation)
        var started: [Int] = []
        let report = try benchmark.run(train: splits.train, test: splits.test, descriptor: splits.descriptor) { started.append($0) }
        #expect(started == [0, 1, 2, 3, 4])
        #expect(report.accuracy.map(\.count) == [1, 2, 3, 4, 5])
        #expect(report.average.count == 5 && report.average.allSatisfy { (0...1).contains($0) })
        #expect(report.average[0] > 0.9, "two classes from five images each: \(report.average[0])")
        #expect(report.average[4] > 0.3, "ten classes: \(report.average[4])")
        let again = try benchmark.run(train: splits.train, test: splits.test, descriptor: splits.descriptor)
        #expect(again.accuracy == report.accuracy)
    }
}
